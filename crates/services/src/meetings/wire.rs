//! The meetings wire format, as pgeu-system's meeting page speaks it: the
//! server's `{"type": T, "data": D}` messages (and `{"type":"error","msg":…}`),
//! and the client's commands, with the original's validation texts.

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use switchboard_core::Frame;

/// The id, time, date and sender of a log line as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineMsg {
    /// The stored id (`-1` on a `disconnect`).
    pub id: i64,
    /// `HH:MM:SS`.
    pub time: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The sender's key id, `-1` for the system (live and in replay alike).
    pub from: i64,
    /// The sender's name, empty for the system.
    pub fromname: String,
    /// The sender's color, [`SYSTEM_COLOR`] for the system.
    pub color: String,
    /// The text.
    pub message: String,
}

/// The color of system lines, live and in replay alike.
pub const SYSTEM_COLOR: &str = "sys";

/// A member in `users`, `adduser` and `removeuser`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserMsg {
    /// Full name.
    pub name: String,
    /// Color, `"0"`..`"9"`.
    pub color: String,
    /// Key id.
    pub id: i64,
}

/// The `poll` message's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PollMsg<'a> {
    /// The question.
    pub question: &'a str,
    /// The answers.
    pub answers: &'a [String],
    /// Votes per answer, always five numbers (as the original).
    pub tally: [u32; 5],
    /// Key ids that voted: a list for admins, `null` for everyone else.
    pub voted: Option<Vec<i64>>,
}

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    data: T,
}

fn frame<T: Serialize>(kind: &str, data: T) -> Frame {
    // Serializing these plain structs cannot fail.
    let json = serde_json::to_vec(&Envelope { kind, data }).unwrap_or_default();
    Frame::Text(Bytes::from(json))
}

/// `message`: one log line, live.
pub fn message(line: &LineMsg) -> Frame {
    frame("message", line)
}

/// `messages`: the history replay, in id order (may be empty).
pub fn messages(lines: &[LineMsg]) -> Frame {
    frame("messages", lines)
}

/// `users`: everyone connected, the receiver included.
pub fn users(users: &[UserMsg]) -> Frame {
    #[derive(Serialize)]
    struct Users<'a> {
        users: &'a [UserMsg],
    }
    frame("users", Users { users })
}

/// `adduser`.
pub fn adduser(user: &UserMsg) -> Frame {
    frame("adduser", user)
}

/// `removeuser`.
pub fn removeuser(user: &UserMsg) -> Frame {
    frame("removeuser", user)
}

/// `status` for a stored state number (0 pending, 1 open, 2 finished).
pub fn status(open: bool, finished: bool) -> Frame {
    #[derive(Serialize)]
    struct Status {
        isopen: bool,
        isfinished: bool,
    }
    frame(
        "status",
        Status {
            isopen: open,
            isfinished: finished,
        },
    )
}

/// `poll`, or `poll` with `data: null` when there is none.
pub fn poll(poll: Option<&PollMsg<'_>>) -> Frame {
    frame("poll", poll)
}

/// `disconnect`: a system line with id `-1` and `reason`, stamped now (UTC).
pub fn disconnect(reason: &str) -> Frame {
    let (date, time) = utc_now();
    frame(
        "disconnect",
        LineMsg {
            id: -1,
            time,
            date,
            from: -1,
            fromname: String::new(),
            color: String::new(),
            message: reason.to_owned(),
        },
    )
}

/// `{"type":"error","msg":…}` (top-level `msg`, as the page reads it).
pub fn error(msg: &str) -> Frame {
    #[derive(Serialize)]
    struct ErrorMsg<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        msg: &'a str,
    }
    let json = serde_json::to_vec(&ErrorMsg { kind: "error", msg }).unwrap_or_default();
    Frame::Text(Bytes::from(json))
}

/// The current UTC date (`YYYY-MM-DD`) and time (`HH:MM:SS`).
fn utc_now() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_parts(secs)
}

/// Date and time of `secs` since the Unix epoch, in UTC.
pub(crate) fn utc_parts(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60),
    )
}

/// A client's command, parsed and checked the way the original checks it.
/// (Serde: how a member's node hands it to the meeting's owner node.)
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub enum Command {
    /// `message`: the trimmed text (never empty).
    Message(String),
    /// `vote`: the question voted on and the answer's index (truncated toward zero).
    Vote {
        /// The question text the page showed.
        question: String,
        /// The index of the answer.
        vote: i64,
    },
    /// `open` (admin).
    Open,
    /// `finish` (admin).
    Finish,
    /// `newpoll` (admin).
    NewPoll {
        /// The question.
        question: String,
        /// At most five answers.
        answers: Vec<String>,
        /// Minutes until it closes (truncated; zero or less closes it at once).
        minutes: i64,
    },
    /// `abortpoll` (admin).
    AbortPoll,
    /// `kick` (admin).
    Kick {
        /// The key id of the member to disconnect.
        user: i64,
        /// Whether the member may join again while the meeting is open.
        can_rejoin: bool,
    },
}

impl Command {
    /// Whether only a meeting's admins may send it.
    pub fn admin_only(&self) -> bool {
        !matches!(self, Command::Message(_) | Command::Vote { .. })
    }
}

/// What came of one client message.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A command to carry out.
    Command(Command),
    /// Refused with this error text (answered to the sender only).
    Refused(&'static str),
    /// Ignored (the original logs and ignores it): not an object, no or an
    /// unknown type, a malformed chat or vote, an empty chat message.
    Ignored(&'static str),
}

/// The message is not JSON: the original ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the message is not JSON: {0}")]
pub struct NotJson(pub String);

/// The `type` of a message, if it is an admin command.
pub fn admin_command_type(bytes: &[u8]) -> Option<&'static str> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    match v.get("type")?.as_str()? {
        "open" => Some("open"),
        "finish" => Some("finish"),
        "newpoll" => Some("newpoll"),
        "abortpoll" => Some("abortpoll"),
        "kick" => Some("kick"),
        _ => None,
    }
}

/// Parses one client message (text or binary frame, JSON either way).
pub fn parse(bytes: &[u8]) -> Result<Parsed, NotJson> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| NotJson(e.to_string()))?;
    let Some(obj) = v.as_object() else {
        return Ok(Parsed::Ignored("not_object"));
    };
    let Some(kind) = obj.get("type").and_then(Value::as_str) else {
        return Ok(Parsed::Ignored("no_type"));
    };
    Ok(match kind {
        "message" => match obj.get("message").and_then(Value::as_str) {
            None => Parsed::Ignored("malformed_message"),
            Some(text) => {
                let text = text.trim();
                if text.is_empty() {
                    Parsed::Ignored("empty_message")
                } else {
                    Parsed::Command(Command::Message(text.to_owned()))
                }
            }
        },
        "vote" => {
            let question = obj.get("question").and_then(Value::as_str);
            let vote = obj.get("vote").and_then(Value::as_f64);
            match (question, vote) {
                (Some(q), Some(n)) => Parsed::Command(Command::Vote {
                    question: q.to_owned(),
                    vote: n.trunc() as i64,
                }),
                _ => Parsed::Ignored("malformed_vote"),
            }
        }
        "open" => Parsed::Command(Command::Open),
        "finish" => Parsed::Command(Command::Finish),
        "abortpoll" => Parsed::Command(Command::AbortPoll),
        "newpoll" => new_poll(obj),
        "kick" => {
            let Some(user) = obj.get("user").and_then(Value::as_f64) else {
                return Ok(Parsed::Refused("Invalid user in json"));
            };
            let Some(can_rejoin) = obj.get("canrejoin").and_then(Value::as_bool) else {
                return Ok(Parsed::Refused("Invalid canrejoin in json"));
            };
            Parsed::Command(Command::Kick {
                user: user.trunc() as i64,
                can_rejoin,
            })
        }
        _ => Parsed::Ignored("unknown_type"),
    })
}

fn new_poll(obj: &serde_json::Map<String, Value>) -> Parsed {
    let Some(question) = obj.get("question").and_then(Value::as_str) else {
        return Parsed::Refused("Invalid or no question");
    };
    let Some(minutes) = obj.get("minutes").and_then(Value::as_f64) else {
        return Parsed::Refused("Invalid or no minutes");
    };
    let Some(raw) = obj.get("answers").and_then(Value::as_array) else {
        return Parsed::Refused("Invalid or no answers");
    };
    if raw.len() > 5 {
        return Parsed::Refused("Too many answers");
    }
    let mut answers = Vec::with_capacity(raw.len());
    for a in raw {
        let Some(a) = a.as_str() else {
            return Parsed::Refused("Invalid or unparsable answer");
        };
        answers.push(a.to_owned());
    }
    Parsed::Command(Command::NewPoll {
        question: question.to_owned(),
        answers,
        minutes: minutes.trunc() as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: &Frame) -> &str {
        std::str::from_utf8(f.payload()).expect("utf-8")
    }

    #[test]
    fn server_messages_have_the_pages_shapes() {
        let line = LineMsg {
            id: 7,
            time: "12:00:01".into(),
            date: "2024-05-06".into(),
            from: 102,
            fromname: "Alice".into(),
            color: "1".into(),
            message: "hi".into(),
        };
        let user = UserMsg {
            name: "Alice".into(),
            color: "1".into(),
            id: 102,
        };
        let answers = vec!["Yes".to_owned(), "No".to_owned()];
        let cases: Vec<(Frame, &str)> = vec![
            (
                message(&line),
                r#"{"type":"message","data":{"id":7,"time":"12:00:01","date":"2024-05-06","from":102,"fromname":"Alice","color":"1","message":"hi"}}"#,
            ),
            (messages(&[]), r#"{"type":"messages","data":[]}"#),
            (
                users(std::slice::from_ref(&user)),
                r#"{"type":"users","data":{"users":[{"name":"Alice","color":"1","id":102}]}}"#,
            ),
            (
                adduser(&user),
                r#"{"type":"adduser","data":{"name":"Alice","color":"1","id":102}}"#,
            ),
            (
                removeuser(&user),
                r#"{"type":"removeuser","data":{"name":"Alice","color":"1","id":102}}"#,
            ),
            (
                status(true, false),
                r#"{"type":"status","data":{"isopen":true,"isfinished":false}}"#,
            ),
            (poll(None), r#"{"type":"poll","data":null}"#),
            (
                poll(Some(&PollMsg {
                    question: "Q?",
                    answers: &answers,
                    tally: [1, 0, 0, 0, 0],
                    voted: None,
                })),
                r#"{"type":"poll","data":{"question":"Q?","answers":["Yes","No"],"tally":[1,0,0,0,0],"voted":null}}"#,
            ),
            (
                poll(Some(&PollMsg {
                    question: "Q?",
                    answers: &answers,
                    tally: [0; 5],
                    voted: Some(vec![]),
                })),
                r#"{"type":"poll","data":{"question":"Q?","answers":["Yes","No"],"tally":[0,0,0,0,0],"voted":[]}}"#,
            ),
            (
                error("Permission denied"),
                r#"{"type":"error","msg":"Permission denied"}"#,
            ),
        ];
        for (got, want) in cases {
            assert_eq!(text(&got), want);
        }
        let d: Value = serde_json::from_slice(disconnect("bye").payload()).unwrap();
        assert_eq!(d["type"], "disconnect");
        assert_eq!(d["data"]["id"], -1);
        assert_eq!(d["data"]["from"], -1);
        assert_eq!(d["data"]["message"], "bye");
        assert_eq!(d["data"]["time"].as_str().unwrap().len(), 8);
    }

    #[test]
    fn client_messages_parse_like_the_original() {
        use Parsed::*;
        let cmd = |c| Ok(Command(c));
        let cases: Vec<(&str, Result<Parsed, ()>)> = vec![
            (
                r#"{"type":"message","message":"  hi there \n"}"#,
                cmd(super::Command::Message("hi there".into())),
            ),
            (
                r#"{"type":"message","message":"   "}"#,
                Ok(Ignored("empty_message")),
            ),
            (
                r#"{"type":"message","message":5}"#,
                Ok(Ignored("malformed_message")),
            ),
            (
                r#"{"type":"vote","question":"Q","vote":1.9}"#,
                cmd(super::Command::Vote {
                    question: "Q".into(),
                    vote: 1,
                }),
            ),
            (
                r#"{"type":"vote","question":"Q","vote":"1"}"#,
                Ok(Ignored("malformed_vote")),
            ),
            (r#"{"type":"open"}"#, cmd(super::Command::Open)),
            (r#"{"type":"finish"}"#, cmd(super::Command::Finish)),
            (r#"{"type":"abortpoll"}"#, cmd(super::Command::AbortPoll)),
            (
                r#"{"type":"newpoll","question":"Q","answers":["a","b"],"minutes":2.5}"#,
                cmd(super::Command::NewPoll {
                    question: "Q".into(),
                    answers: vec!["a".into(), "b".into()],
                    minutes: 2,
                }),
            ),
            (
                r#"{"type":"newpoll","answers":[],"minutes":1}"#,
                Ok(Refused("Invalid or no question")),
            ),
            (
                r#"{"type":"newpoll","question":"Q","answers":[]}"#,
                Ok(Refused("Invalid or no minutes")),
            ),
            (
                r#"{"type":"newpoll","question":"Q","minutes":1}"#,
                Ok(Refused("Invalid or no answers")),
            ),
            (
                r#"{"type":"newpoll","question":"Q","minutes":1,"answers":["1","2","3","4","5","6"]}"#,
                Ok(Refused("Too many answers")),
            ),
            (
                r#"{"type":"newpoll","question":"Q","minutes":1,"answers":["1",2]}"#,
                Ok(Refused("Invalid or unparsable answer")),
            ),
            (
                r#"{"type":"kick","user":12,"canrejoin":false}"#,
                cmd(super::Command::Kick {
                    user: 12,
                    can_rejoin: false,
                }),
            ),
            (
                r#"{"type":"kick","user":"12","canrejoin":false}"#,
                Ok(Refused("Invalid user in json")),
            ),
            (
                r#"{"type":"kick","user":12}"#,
                Ok(Refused("Invalid canrejoin in json")),
            ),
            (r#"{"type":"dance"}"#, Ok(Ignored("unknown_type"))),
            (r#"{"message":"x"}"#, Ok(Ignored("no_type"))),
            (r#"[1,2]"#, Ok(Ignored("not_object"))),
            (r#"{"type":"message""#, Err(())),
        ];
        for (input, want) in cases {
            let got = parse(input.as_bytes()).map_err(drop);
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn admin_commands_are_recognised_before_their_fields() {
        assert_eq!(
            admin_command_type(br#"{"type":"newpoll"}"#),
            Some("newpoll")
        );
        assert_eq!(
            admin_command_type(br#"{"type":"kick","user":"x"}"#),
            Some("kick")
        );
        assert_eq!(admin_command_type(br#"{"type":"message"}"#), None);
        assert_eq!(admin_command_type(b"nope"), None);
    }

    #[test]
    fn utc_dates_are_civil() {
        assert_eq!(utc_parts(0), ("1970-01-01".into(), "00:00:00".into()));
        assert_eq!(
            utc_parts(951_782_400 + 3661),
            ("2000-02-29".into(), "01:01:01".into())
        );
        assert_eq!(
            utc_parts(1_735_689_599),
            ("2024-12-31".into(), "23:59:59".into())
        );
    }
}
