//! The load-balancer stream's messages, in the seed library's format: one
//! field `lbs-input` holding `{"DataStreamName": "...", "Info": {...}}`.
//! Producers written for that library work unchanged; `host assign` writes
//! the same. An entry of a data stream with a field [`END_MARKER`] ends it.

use crate::entry::Entry;
use std::sync::Arc;

/// The field of an assignment message.
pub const FIELD: &str = "lbs-input";
/// A data stream entry with this field (any value) ends the stream: it is
/// acked, not handed to the plugin, and the stream's assignment is finished.
pub const END_MARKER: &str = "lbs-end";

/// One assignment: a data stream for one worker at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Its id on the assignment stream.
    pub id: String,
    /// The data stream.
    pub stream: String,
    /// The `Info` object as JSON text (`{}` when absent), for the plugin.
    pub info: Arc<str>,
}

/// The message of an assignment of `stream` with `info` (a JSON object).
pub fn message(stream: &str, info: &serde_json::Value) -> String {
    serde_json::json!({ "DataStreamName": stream, "Info": info }).to_string()
}

/// Reads assignment message `entry`, or says what is wrong with it.
pub fn parse(entry: &Entry) -> Result<Assignment, String> {
    let Some((_, value)) = entry.fields.iter().find(|(name, _)| name == FIELD.as_bytes()) else {
        return Err(format!(
            "no field {FIELD:?}: an assignment is {FIELD} = {{\"DataStreamName\": …, \"Info\": {{…}}}}"
        ));
    };
    let json: serde_json::Value =
        serde_json::from_slice(value).map_err(|e| format!("field {FIELD:?} is not JSON: {e}"))?;
    let stream = match json.get("DataStreamName") {
        Some(serde_json::Value::String(name)) if !name.is_empty() => name.clone(),
        _ => return Err(format!("field {FIELD:?} has no DataStreamName (a non-empty string)")),
    };
    let info = match json.get("Info") {
        None | Some(serde_json::Value::Null) => "{}".to_string(),
        Some(info @ serde_json::Value::Object(_)) => info.to_string(),
        Some(other) => return Err(format!("Info must be a JSON object, not {other}")),
    };
    Ok(Assignment { id: entry.id.clone(), stream, info: info.into() })
}

/// Whether `entry` is a data stream's end marker.
pub fn is_end(entry: &Entry) -> bool {
    entry.fields.iter().any(|(name, _)| name == END_MARKER.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: &str) -> Entry {
        Entry { id: "1-0".into(), fields: vec![(FIELD.into(), value.into())], delivery_count: 1 }
    }

    #[test]
    fn the_seed_library_format_is_read_as_is() {
        let a = parse(&entry(r#"{"DataStreamName":"session-7","Info":{"user":"ann","n":3}}"#)).unwrap();
        assert_eq!((a.id.as_str(), a.stream.as_str()), ("1-0", "session-7"));
        assert_eq!(&*a.info, r#"{"n":3,"user":"ann"}"#);
        assert_eq!(&*parse(&entry(r#"{"DataStreamName":"s"}"#)).unwrap().info, "{}");
        let written = message("s", &serde_json::json!({"k": 1}));
        assert_eq!(parse(&entry(&written)).unwrap().stream, "s");
    }

    #[test]
    fn a_bad_message_says_what_is_wrong() {
        assert!(parse(&entry("nope")).unwrap_err().contains("not JSON"));
        assert!(parse(&entry(r#"{"Info":{}}"#)).unwrap_err().contains("no DataStreamName"));
        assert!(parse(&entry(r#"{"DataStreamName":"s","Info":[1]}"#)).unwrap_err().contains("JSON object"));
        let none = Entry { id: "1-0".into(), fields: vec![], delivery_count: 1 };
        assert!(parse(&none).unwrap_err().contains("no field"));
    }
}
