//! The bench's message format and clock: a fixed-layout, ASCII payload that
//! carries a stream id, a sequence number and a send timestamp.
//!
//! Layout (all lowercase hexadecimal, big-endian digit order):
//!
//! | bytes   | field     | width                                   |
//! |---------|-----------|-----------------------------------------|
//! | 0..4    | stream id | 16 bits (one per publisher connection)  |
//! | 4..12   | sequence  | 32 bits, counting from 0 per stream     |
//! | 12..24  | sent at   | 48 bits of nanoseconds since [`now_ns`]'s base |
//! | 24..    | padding   | `.` up to the requested size            |
//!
//! The payload is valid UTF-8 (ASCII), so it travels as a text frame and as a
//! POST body unchanged. Decoding reads the 24 header bytes in place: no
//! allocation, no UTF-8 pass, one table lookup per digit. 48 bits of
//! nanoseconds cover 78 hours of one bench process.

use std::sync::OnceLock;
use std::time::Instant;

/// Bytes taken by the header; the smallest payload that can be encoded.
pub const HEADER_LEN: usize = 24;

/// The byte used to pad a payload after its header.
pub const PAD: u8 = b'.';

const STREAM_DIGITS: usize = 4;
const SEQ_DIGITS: usize = 8;
const TIME_DIGITS: usize = 12;
const TIME_MAX: u64 = (1 << (4 * TIME_DIGITS)) - 1;

/// What one bench message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Which publisher stream the message belongs to (sequence numbers are
    /// per stream).
    pub stream: u16,
    /// The sequence number within the stream, from 0.
    pub seq: u32,
    /// When it was sent: nanoseconds since the process-wide base of [`now_ns`].
    pub sent_ns: u64,
}

/// Why a payload could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The buffer is shorter than [`HEADER_LEN`].
    #[error("payload of {len} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort {
        /// The length that was given.
        len: usize,
    },
    /// A header byte is not a hexadecimal digit.
    #[error("payload byte {offset} is not a hex digit")]
    NotHex {
        /// Offset of the offending byte.
        offset: usize,
    },
    /// The timestamp does not fit in 48 bits.
    #[error("timestamp {0} ns does not fit in 48 bits")]
    TimeOverflow(u64),
}

/// Nanoseconds elapsed since the process-wide base instant (set on first use).
///
/// Every timestamp in a payload and every receive time compared with it comes
/// from here, so publisher and subscribers in one process share one clock.
pub fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Writes `stamp` into `buf` and pads the rest of `buf` with [`PAD`].
///
/// The payload length is `buf.len()`, which must be at least [`HEADER_LEN`].
pub fn encode_into(buf: &mut [u8], stamp: Stamp) -> Result<(), PayloadError> {
    if buf.len() < HEADER_LEN {
        return Err(PayloadError::TooShort { len: buf.len() });
    }
    if stamp.sent_ns > TIME_MAX {
        return Err(PayloadError::TimeOverflow(stamp.sent_ns));
    }
    let (stream, rest) = buf.split_at_mut(STREAM_DIGITS);
    let (seq, rest) = rest.split_at_mut(SEQ_DIGITS);
    let (time, pad) = rest.split_at_mut(TIME_DIGITS);
    write_hex(stream, u64::from(stamp.stream));
    write_hex(seq, u64::from(stamp.seq));
    write_hex(time, stamp.sent_ns);
    pad.fill(PAD);
    Ok(())
}

/// Encodes `stamp` into a new payload of exactly `size` bytes.
pub fn encode(stamp: Stamp, size: usize) -> Result<Vec<u8>, PayloadError> {
    let mut buf = vec![0; size];
    encode_into(&mut buf, stamp)?;
    Ok(buf)
}

/// Reads the stamp from the start of `payload`; padding is not inspected.
#[inline]
pub fn decode(payload: &[u8]) -> Result<Stamp, PayloadError> {
    let Some(header) = payload.get(..HEADER_LEN) else {
        return Err(PayloadError::TooShort { len: payload.len() });
    };
    let stream = read_hex(header, 0, STREAM_DIGITS)?;
    let seq = read_hex(header, STREAM_DIGITS, SEQ_DIGITS)?;
    let sent_ns = read_hex(header, STREAM_DIGITS + SEQ_DIGITS, TIME_DIGITS)?;
    Ok(Stamp {
        // The digit counts bound these values, so the conversions cannot fail.
        stream: u16::try_from(stream).unwrap_or(u16::MAX),
        seq: u32::try_from(seq).unwrap_or(u32::MAX),
        sent_ns,
    })
}

fn write_hex(out: &mut [u8], mut value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in out.iter_mut().rev() {
        *byte = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// Hex digit values; 0xff marks a non-digit.
const HEX_VALUE: [u8; 256] = {
    let mut table = [0xff_u8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

#[inline]
fn read_hex(header: &[u8], start: usize, digits: usize) -> Result<u64, PayloadError> {
    let mut value = 0u64;
    for (i, &byte) in header[start..start + digits].iter().enumerate() {
        let digit = HEX_VALUE[usize::from(byte)];
        if digit == 0xff {
            return Err(PayloadError::NotHex { offset: start + i });
        }
        value = (value << 4) | u64::from(digit);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_table() {
        let cases = [
            (
                Stamp {
                    stream: 0,
                    seq: 0,
                    sent_ns: 0,
                },
                24,
            ),
            (
                Stamp {
                    stream: 1,
                    seq: 1,
                    sent_ns: 1,
                },
                64,
            ),
            (
                Stamp {
                    stream: 0xabcd,
                    seq: 123_456,
                    sent_ns: 987_654_321_012,
                },
                100,
            ),
            (
                Stamp {
                    stream: u16::MAX,
                    seq: u32::MAX,
                    sent_ns: TIME_MAX,
                },
                25,
            ),
        ];
        for (stamp, size) in cases {
            let bytes = encode(stamp, size).unwrap();
            assert_eq!(bytes.len(), size);
            assert!(std::str::from_utf8(&bytes).unwrap().is_ascii());
            assert!(bytes[HEADER_LEN..].iter().all(|&b| b == PAD));
            assert_eq!(decode(&bytes).unwrap(), stamp, "size {size}");
        }
    }

    #[test]
    fn layout_is_fixed_hex() {
        let bytes = encode(
            Stamp {
                stream: 2,
                seq: 0x1f,
                sent_ns: 0xabc,
            },
            30,
        )
        .unwrap();
        assert_eq!(&bytes, b"00020000001f000000000abc......");
    }

    #[test]
    fn decode_accepts_uppercase() {
        let stamp = decode(b"000A0000001F000000000ABC").unwrap();
        assert_eq!(
            stamp,
            Stamp {
                stream: 10,
                seq: 31,
                sent_ns: 0xabc
            }
        );
    }

    #[test]
    fn errors() {
        assert_eq!(decode(b"0001"), Err(PayloadError::TooShort { len: 4 }));
        assert_eq!(
            decode(b"00010000000x000000000000"),
            Err(PayloadError::NotHex { offset: 11 })
        );
        let mut small = [0u8; 10];
        assert_eq!(
            encode_into(
                &mut small,
                Stamp {
                    stream: 0,
                    seq: 0,
                    sent_ns: 0
                }
            ),
            Err(PayloadError::TooShort { len: 10 })
        );
        assert_eq!(
            encode(
                Stamp {
                    stream: 0,
                    seq: 0,
                    sent_ns: TIME_MAX + 1
                },
                24
            ),
            Err(PayloadError::TimeOverflow(TIME_MAX + 1))
        );
    }

    #[test]
    fn clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
    }
}
