//! A request body as the scoring routes read it: JSON, then a login event, then the
//! shipped bundle's features. Any input may be rejected; none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use login_scorer::scoring::LoginEvent;
use login_scorer::scoring::timestamp::parse_timestamp;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_timestamp(text);
    }
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = LoginEvent::from_json(&body);
    if let Some(events) = body.get("events").and_then(|events| events.as_array()) {
        for event in events {
            let _ = LoginEvent::from_json(event);
        }
    }
});
