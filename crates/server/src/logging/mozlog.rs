//! The MozLog event format (the channelserver persona's log lines): one JSON
//! object per line with the original's field names and order.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::registry::LookupSpan;

/// A `tracing` event formatter writing [MozLog](https://wiki.mozilla.org/Firefox/Services/Logging)
/// JSON: `{"Logger","Type","Pid","Severity","Timestamp","Fields"}`, one object
/// per line. `Severity` is syslog's (3 error, 4 warning, 6 info, 7 debug and
/// trace), `Timestamp` nanoseconds since the epoch, and `Fields` the event's
/// fields with the message under `msg`.
#[derive(Debug, Clone)]
pub struct MozLog {
    logger: String,
    kind: String,
    pid: u32,
}

impl MozLog {
    /// A formatter for program `app` (e.g. `channelserver`).
    pub fn new(app: &str) -> Self {
        MozLog {
            logger: format!("{app}-{}", env!("CARGO_PKG_VERSION")),
            kind: format!("{app}:log"),
            pid: std::process::id(),
        }
    }
}

/// One MozLog line; fields in the original's order.
#[derive(serde::Serialize)]
struct Line<'a> {
    #[serde(rename = "Logger")]
    logger: &'a str,
    #[serde(rename = "Type")]
    kind: &'a str,
    #[serde(rename = "Pid")]
    pid: u32,
    #[serde(rename = "Severity")]
    severity: u8,
    #[serde(rename = "Timestamp")]
    timestamp: u64,
    #[serde(rename = "Fields")]
    fields: BTreeMap<String, Value>,
}

fn severity(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

impl<S, N> FormatEvent<S, N> for MozLog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = BTreeMap::new();
        event.record(&mut FieldMap(&mut fields));
        // Every MozLog line has a `msg`, even for events that carry only fields.
        let message = fields
            .remove("message")
            .unwrap_or_else(|| Value::String(String::new()));
        fields.insert("msg".to_owned(), message);
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let line = Line {
            logger: &self.logger,
            kind: &self.kind,
            pid: self.pid,
            severity: severity(*event.metadata().level()),
            timestamp,
            fields,
        };
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Collects an event's fields as JSON values.
struct FieldMap<'a>(&'a mut BTreeMap<String, Value>);

impl Visit for FieldMap<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn mozlog_lines_have_the_originals_shape() {
        let buf = Buffer::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_max_level(Level::DEBUG)
            .event_format(MozLog::new("channelserver"))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("Starting server: {:?}", "127.0.0.1:8111");
            tracing::warn!(channel = "abc", session = 7u64, ok = true, "join refused");
            tracing::error!("broken");
            tracing::debug!("detail");
            tracing::debug!(rows = 1u64);
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 5, "{text}");
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with(&format!(
                "{{\"Logger\":\"channelserver-{}\",\"Type\":\"channelserver:log\",\"Pid\":{},\"Severity\":6,\"Timestamp\":",
                env!("CARGO_PKG_VERSION"),
                std::process::id()
            )),
            "{first}"
        );
        assert_eq!(
            lines[0]["Fields"],
            serde_json::json!({"msg": "Starting server: \"127.0.0.1:8111\""})
        );
        assert!(lines[0]["Timestamp"].as_u64().unwrap() > 1_600_000_000_000_000_000);
        assert_eq!(lines[1]["Severity"], 4);
        assert_eq!(
            lines[1]["Fields"],
            serde_json::json!({"msg": "join refused", "channel": "abc", "session": 7, "ok": true})
        );
        assert_eq!(lines[2]["Severity"], 3);
        assert_eq!(lines[3]["Severity"], 7);
        assert_eq!(
            lines[4]["Fields"],
            serde_json::json!({"msg": "", "rows": 1}),
            "msg is always there"
        );
    }
}
