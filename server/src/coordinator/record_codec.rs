//! The string encoding of Kafka's internal-topic records (`__consumer_offsets`,
//! `__transaction_state`): an i16 length, then UTF-8 bytes. Big-endian.

use bytes::{Buf, BufMut, BytesMut};

pub fn put_string(buf: &mut BytesMut, text: &str) {
    buf.put_i16(text.len() as i16);
    buf.put_slice(text.as_bytes());
}

/// Reads a string; `None` when truncated, negative in length or not UTF-8.
pub fn get_string(buf: &mut &[u8]) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = usize::try_from(buf.get_i16()).ok()?;
    let text = String::from_utf8(buf.get(..len)?.to_vec()).ok()?;
    buf.advance(len);
    Some(text)
}
