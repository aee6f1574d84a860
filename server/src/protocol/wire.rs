//! Primitive Kafka wire types for the few messages encoded by hand (Fetch),
//! in both the classic and the flexible (compact, tagged) forms.

use bytes::{BufMut, BytesMut};

pub fn put_unsigned_varint(buf: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// Array length: int32 (classic) or unsigned varint of length + 1 (compact).
pub fn put_array_len(buf: &mut BytesMut, flexible: bool, len: usize) {
    if flexible {
        put_unsigned_varint(buf, len as u64 + 1);
    } else {
        buf.put_i32(len as i32);
    }
}

pub fn put_string(buf: &mut BytesMut, flexible: bool, text: &str) {
    if flexible {
        put_unsigned_varint(buf, text.len() as u64 + 1);
    } else {
        buf.put_i16(text.len() as i16);
    }
    buf.put_slice(text.as_bytes());
}

/// Length prefix of a nullable byte field (`records`): `None` is null.
pub fn put_bytes_len(buf: &mut BytesMut, flexible: bool, len: Option<usize>) {
    match (len, flexible) {
        (Some(len), true) => put_unsigned_varint(buf, len as u64 + 1),
        (Some(len), false) => buf.put_i32(len as i32),
        (None, true) => put_unsigned_varint(buf, 0),
        (None, false) => buf.put_i32(-1),
    }
}

/// An empty tagged-field section.
pub fn put_no_tagged_fields(buf: &mut BytesMut, flexible: bool) {
    if flexible {
        put_unsigned_varint(buf, 0);
    }
}
