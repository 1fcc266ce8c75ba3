//! The login event as a gateway sends it (JSON) or as the RBA CSV holds it.
//!
//! Both shapes go through the same field readers, so the HTTP service and offline
//! scoring see the same `LoginEvent` for the same input.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::timestamp;

/// One field of a login event: the snake_case JSON name and the RBA CSV column name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventField {
    /// When the login happened.
    Timestamp,
    /// The account, a signed 64-bit id.
    UserId,
    /// Round-trip time measured by the login page, in milliseconds.
    RoundTripTimeMs,
    /// Client IP address.
    IpAddress,
    /// Country code of the IP address.
    Country,
    /// Region of the IP address.
    Region,
    /// City of the IP address.
    City,
    /// Autonomous system number of the IP address.
    Asn,
    /// Raw user-agent string.
    UserAgent,
    /// Parsed browser, e.g. `Chrome 86.0.4202`.
    BrowserNameAndVersion,
    /// Parsed operating system, e.g. `Mac OS X 10.14.6`.
    OsNameAndVersion,
    /// `mobile`, `desktop`, `tablet`, `bot` or `unknown`.
    DeviceType,
    /// Whether the password was right.
    LoginSuccessful,
    /// Whether the IP address is known to attack.
    IsAttackIp,
    /// The data set's label; accepted and ignored by scoring.
    IsAccountTakeover,
}

impl EventField {
    /// Every field, in the RBA CSV's column order.
    pub const ALL: [EventField; 15] = [
        Self::Timestamp,
        Self::UserId,
        Self::RoundTripTimeMs,
        Self::IpAddress,
        Self::Country,
        Self::Region,
        Self::City,
        Self::Asn,
        Self::UserAgent,
        Self::BrowserNameAndVersion,
        Self::OsNameAndVersion,
        Self::DeviceType,
        Self::LoginSuccessful,
        Self::IsAttackIp,
        Self::IsAccountTakeover,
    ];

    /// The snake_case name used in JSON events and in `preprocess.json` sources.
    pub fn name(self) -> &'static str {
        match self {
            Self::Timestamp => "timestamp",
            Self::UserId => "user_id",
            Self::RoundTripTimeMs => "round_trip_time_ms",
            Self::IpAddress => "ip_address",
            Self::Country => "country",
            Self::Region => "region",
            Self::City => "city",
            Self::Asn => "asn",
            Self::UserAgent => "user_agent",
            Self::BrowserNameAndVersion => "browser_name_and_version",
            Self::OsNameAndVersion => "os_name_and_version",
            Self::DeviceType => "device_type",
            Self::LoginSuccessful => "login_successful",
            Self::IsAttackIp => "is_attack_ip",
            Self::IsAccountTakeover => "is_account_takeover",
        }
    }

    /// The column name of the published RBA CSV, accepted as an alias in JSON.
    pub fn csv_name(self) -> &'static str {
        match self {
            Self::Timestamp => "Login Timestamp",
            Self::UserId => "User ID",
            Self::RoundTripTimeMs => "Round-Trip Time [ms]",
            Self::IpAddress => "IP Address",
            Self::Country => "Country",
            Self::Region => "Region",
            Self::City => "City",
            Self::Asn => "ASN",
            Self::UserAgent => "User Agent String",
            Self::BrowserNameAndVersion => "Browser Name and Version",
            Self::OsNameAndVersion => "OS Name and Version",
            Self::DeviceType => "Device Type",
            Self::LoginSuccessful => "Login Successful",
            Self::IsAttackIp => "Is Attack IP",
            Self::IsAccountTakeover => "Is Account Takeover",
        }
    }

    /// Looks a field up by its snake_case name or its CSV column name.
    pub fn from_name(name: &str) -> Option<EventField> {
        Self::ALL
            .into_iter()
            .find(|field| field.name() == name || field.csv_name() == name)
    }
}

impl fmt::Display for EventField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an event could not be read. The message always names the offending field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    /// The event is not a JSON object.
    #[error("an event must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// A field has the wrong type or an unusable value.
    #[error("field `{field}`: {reason}")]
    InvalidField {
        /// The offending field.
        field: EventField,
        /// What is wrong with it.
        reason: String,
    },
}

impl EventError {
    fn invalid(field: EventField, reason: impl Into<String>) -> Self {
        Self::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}

/// A login attempt with every field optional: absence is decided per feature by the
/// bundle's missing rule, not here.
///
/// NOTE: a text field holding an empty or all-blank string is stored as `None`: the
/// bundle contract treats it exactly like an absent field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoginEvent {
    /// When the login happened, in UTC.
    pub timestamp: Option<DateTime<Utc>>,
    /// The account id (full signed 64-bit range).
    pub user_id: Option<i64>,
    /// Round-trip time in milliseconds.
    pub round_trip_time_ms: Option<f64>,
    /// Client IP address, kept as text (not a model input).
    pub ip_address: Option<String>,
    /// Country code.
    pub country: Option<String>,
    /// Region (not a model input).
    pub region: Option<String>,
    /// City (not a model input).
    pub city: Option<String>,
    /// Autonomous system number.
    pub asn: Option<i64>,
    /// Raw user-agent string.
    pub user_agent: Option<String>,
    /// Parsed browser name and version.
    pub browser_name_and_version: Option<String>,
    /// Parsed OS name and version.
    pub os_name_and_version: Option<String>,
    /// Device type.
    pub device_type: Option<String>,
    /// Whether the password was right.
    pub login_successful: Option<bool>,
    /// Whether the IP address is a known attacker.
    pub is_attack_ip: Option<bool>,
    /// Takeover label, when the input carries it.
    pub is_account_takeover: Option<bool>,
}

/// One raw field value, from JSON or from a CSV cell.
#[derive(Debug, Clone, Copy)]
pub enum RawValue<'a> {
    /// A JSON value.
    Json(&'a Value),
    /// A CSV cell.
    Text(&'a str),
}

impl LoginEvent {
    /// Reads an event from JSON. Fields are looked up by snake_case name, then by RBA
    /// CSV column name; other keys are ignored so gateways may add their own.
    // TODO: the body goes through a whole `serde_json::Value` tree first, 3.9 us of the
    // 5.1 us per event in 1,000-event batches (BENCHMARKS.md, 196k events/s per core from
    // JSON against 2.07M from parsed events); a borrowed, field-by-field deserializer
    // would be the next step toward 1M events/s, with the same errors per field.
    pub fn from_json(value: &Value) -> Result<LoginEvent, EventError> {
        let object = value
            .as_object()
            .ok_or(EventError::NotAnObject(json_kind(value)))?;
        Self::from_fields(|field| lookup_json(object, field).map(RawValue::Json))
    }

    /// Reads an event from any source that yields a raw value per field.
    pub fn from_fields<'a>(
        lookup: impl Fn(EventField) -> Option<RawValue<'a>>,
    ) -> Result<LoginEvent, EventError> {
        use EventField as F;
        let text = |field| read_text(field, lookup(field));
        let boolean = |field| read_bool(field, lookup(field));
        let integer = |field| read_i64(field, lookup(field));

        Ok(LoginEvent {
            timestamp: read_timestamp(lookup(F::Timestamp))?,
            user_id: integer(F::UserId)?,
            round_trip_time_ms: read_f64(F::RoundTripTimeMs, lookup(F::RoundTripTimeMs))?,
            ip_address: text(F::IpAddress)?,
            country: text(F::Country)?,
            region: text(F::Region)?,
            city: text(F::City)?,
            asn: integer(F::Asn)?,
            user_agent: text(F::UserAgent)?,
            browser_name_and_version: text(F::BrowserNameAndVersion)?,
            os_name_and_version: text(F::OsNameAndVersion)?,
            device_type: text(F::DeviceType)?,
            login_successful: boolean(F::LoginSuccessful)?,
            is_attack_ip: boolean(F::IsAttackIp)?,
            is_account_takeover: boolean(F::IsAccountTakeover)?,
        })
    }

    /// The value of a text field, if `field` is one.
    pub fn text(&self, field: EventField) -> Option<&str> {
        use EventField as F;
        let value = match field {
            F::IpAddress => &self.ip_address,
            F::Country => &self.country,
            F::Region => &self.region,
            F::City => &self.city,
            F::UserAgent => &self.user_agent,
            F::BrowserNameAndVersion => &self.browser_name_and_version,
            F::OsNameAndVersion => &self.os_name_and_version,
            F::DeviceType => &self.device_type,
            _ => return None,
        };
        value.as_deref()
    }

    /// The value of a boolean field, if `field` is one.
    pub fn flag(&self, field: EventField) -> Option<bool> {
        use EventField as F;
        match field {
            F::LoginSuccessful => self.login_successful,
            F::IsAttackIp => self.is_attack_ip,
            F::IsAccountTakeover => self.is_account_takeover,
            _ => None,
        }
    }
}

/// Whether `field` holds text (and so can feed a category feature).
pub fn is_text_field(field: EventField) -> bool {
    use EventField as F;
    matches!(
        field,
        F::IpAddress
            | F::Country
            | F::Region
            | F::City
            | F::UserAgent
            | F::BrowserNameAndVersion
            | F::OsNameAndVersion
            | F::DeviceType
    )
}

/// Whether `field` holds a boolean.
pub fn is_flag_field(field: EventField) -> bool {
    use EventField as F;
    matches!(
        field,
        F::LoginSuccessful | F::IsAttackIp | F::IsAccountTakeover
    )
}

fn lookup_json(object: &Map<String, Value>, field: EventField) -> Option<&Value> {
    object
        .get(field.name())
        .or_else(|| object.get(field.csv_name()))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The non-blank text of a raw value, `None` when it is missing, or the JSON value
/// itself when it is neither null nor a string.
fn as_text<'a>(raw: Option<RawValue<'a>>) -> Result<Option<&'a str>, &'a Value> {
    let text: &'a str = match raw {
        None | Some(RawValue::Json(Value::Null)) => return Ok(None),
        Some(RawValue::Json(Value::String(s))) => s.as_str(),
        Some(RawValue::Text(s)) => s,
        Some(RawValue::Json(other)) => return Err(other),
    };
    Ok(if text.trim().is_empty() {
        None
    } else {
        Some(text)
    })
}

fn read_text(field: EventField, raw: Option<RawValue<'_>>) -> Result<Option<String>, EventError> {
    match as_text(raw) {
        Ok(text) => Ok(text.map(str::to_owned)),
        Err(other) => Err(EventError::invalid(
            field,
            format!("expected a string, got {}", json_kind(other)),
        )),
    }
}

fn read_bool(field: EventField, raw: Option<RawValue<'_>>) -> Result<Option<bool>, EventError> {
    if let Some(RawValue::Json(Value::Bool(flag))) = raw {
        return Ok(Some(*flag));
    }
    let expected = "expected true or false (or the strings True/False, true/false, TRUE/FALSE)";
    match as_text(raw) {
        Ok(None) => Ok(None),
        Ok(Some(text)) => match text.trim() {
            "True" | "true" | "TRUE" => Ok(Some(true)),
            "False" | "false" | "FALSE" => Ok(Some(false)),
            other => Err(EventError::invalid(
                field,
                format!("{expected}, got `{other}`"),
            )),
        },
        Err(other) => Err(EventError::invalid(
            field,
            format!("{expected}, got {}", json_kind(other)),
        )),
    }
}

fn read_i64(field: EventField, raw: Option<RawValue<'_>>) -> Result<Option<i64>, EventError> {
    let expected = "expected a signed 64-bit integer (number or string)";
    if let Some(RawValue::Json(Value::Number(number))) = raw {
        return number
            .as_i64()
            .map(Some)
            .ok_or_else(|| EventError::invalid(field, format!("{expected}, got {number}")));
    }
    match as_text(raw) {
        Ok(None) => Ok(None),
        Ok(Some(text)) => {
            text.trim().parse::<i64>().map(Some).map_err(|_| {
                EventError::invalid(field, format!("{expected}, got `{}`", text.trim()))
            })
        }
        Err(other) => Err(EventError::invalid(
            field,
            format!("{expected}, got {}", json_kind(other)),
        )),
    }
}

fn read_f64(field: EventField, raw: Option<RawValue<'_>>) -> Result<Option<f64>, EventError> {
    let expected = "expected a finite number";
    let number = match raw {
        Some(RawValue::Json(Value::Number(number))) => number.as_f64(),
        _ => match as_text(raw) {
            Ok(None) => return Ok(None),
            Ok(Some(text)) => text.trim().parse::<f64>().ok(),
            Err(other) => {
                let reason = format!("{expected}, got {}", json_kind(other));
                return Err(EventError::invalid(field, reason));
            }
        },
    };
    match number {
        Some(value) if value.is_finite() => Ok(Some(value)),
        _ => Err(EventError::invalid(field, expected)),
    }
}

fn read_timestamp(raw: Option<RawValue<'_>>) -> Result<Option<DateTime<Utc>>, EventError> {
    let field = EventField::Timestamp;
    if let Some(RawValue::Json(Value::Number(number))) = raw {
        let millis = number.as_i64().ok_or_else(|| {
            EventError::invalid(
                field,
                format!("epoch milliseconds must be an integer, got {number}"),
            )
        })?;
        return timestamp::from_epoch_millis(millis)
            .map(Some)
            .map_err(|reason| EventError::invalid(field, reason));
    }
    match as_text(raw) {
        Ok(None) => Ok(None),
        Ok(Some(text)) => timestamp::parse_timestamp(text)
            .map(Some)
            .map_err(|reason| EventError::invalid(field, reason)),
        Err(other) => Err(EventError::invalid(
            field,
            format!(
                "expected a string or epoch milliseconds, got {}",
                json_kind(other)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_snake_case_and_csv_aliases() {
        let event = LoginEvent::from_json(&json!({
            "Login Timestamp": "2020-02-03 12:43:30.772",
            "user_id": -4324475583306591935_i64,
            "Country": "NO",
            "login_successful": "False",
            "Is Attack IP": true,
            "asn": "29695",
            "round_trip_time_ms": "",
            "gateway_extra": {"ignored": true}
        }))
        .unwrap();
        assert_eq!(event.user_id, Some(-4324475583306591935));
        assert_eq!(event.country.as_deref(), Some("NO"));
        assert_eq!(event.login_successful, Some(false));
        assert_eq!(event.is_attack_ip, Some(true));
        assert_eq!(event.asn, Some(29695));
        assert_eq!(event.round_trip_time_ms, None);
        assert!(event.timestamp.is_some());
    }

    #[test]
    fn user_id_covers_the_signed_range_as_number_or_string() {
        for id in [i64::MIN, i64::MAX, 0] {
            let from_number = LoginEvent::from_json(&json!({ "user_id": id })).unwrap();
            let from_text = LoginEvent::from_json(&json!({ "user_id": id.to_string() })).unwrap();
            assert_eq!(from_number.user_id, Some(id));
            assert_eq!(from_text.user_id, Some(id));
        }
        let err = LoginEvent::from_json(&json!({ "user_id": 9223372036854775808_u64 }));
        assert!(err.unwrap_err().to_string().contains("`user_id`"));
    }

    #[test]
    fn blank_and_null_are_missing() {
        let event = LoginEvent::from_json(&json!({"country": "  ", "timestamp": null})).unwrap();
        assert_eq!((event.country, event.timestamp), (None, None));
    }

    #[test]
    fn wrong_types_name_the_field() {
        let cases = [
            (json!({"country": 47}), "`country`"),
            (json!({"login_successful": "yes"}), "`login_successful`"),
            (json!({"timestamp": "soon"}), "`timestamp`"),
            (json!({"timestamp": 1.5}), "`timestamp`"),
            (
                json!({"round_trip_time_ms": "fast"}),
                "`round_trip_time_ms`",
            ),
            (json!({"asn": 1.5}), "`asn`"),
        ];
        for (event, field) in cases {
            let message = LoginEvent::from_json(&event).unwrap_err().to_string();
            assert!(message.contains(field), "{message} should name {field}");
        }
        assert!(matches!(
            LoginEvent::from_json(&json!([1])),
            Err(EventError::NotAnObject(_))
        ));
    }

    #[test]
    fn epoch_millis_timestamp() {
        let event = LoginEvent::from_json(&json!({"timestamp": 1_580_733_810_772_i64})).unwrap();
        assert_eq!(
            event.timestamp.unwrap().timestamp_millis(),
            1_580_733_810_772
        );
    }
}
