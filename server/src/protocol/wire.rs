//! Primitive Kafka wire types for the few messages encoded by hand (Fetch),
//! and read by hand (a produce frame's first bytes), in both the classic and
//! the flexible (compact, tagged) forms.

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

/// Reads primitive fields from the front of a byte slice; every read past
/// its end is `None`, never a panic.
pub struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.at
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let taken = self.bytes.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        Some(taken)
    }

    pub fn skip(&mut self, len: usize) -> Option<()> {
        self.take(len).map(drop)
    }

    pub fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    pub fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    pub fn unsigned_varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// A length: int16 or int32 (classic, negative for null) or unsigned
    /// varint of length + 1 (compact, 0 for null). Null is `Some(None)`.
    fn nullable_len(&mut self, flexible: bool, classic_bytes: usize) -> Option<Option<usize>> {
        let len = if flexible {
            self.unsigned_varint()?.checked_sub(1).map(|l| l as i64)
        } else if classic_bytes == 2 {
            Some(i64::from(self.i16()?))
        } else {
            Some(i64::from(self.i32()?))
        };
        Some(len.filter(|l| *l >= 0).map(|l| l as usize))
    }

    pub fn skip_nullable_string(&mut self, flexible: bool) -> Option<()> {
        let len = self.nullable_len(flexible, 2)?.unwrap_or(0);
        self.skip(len)
    }

    /// A non-null string.
    pub fn string(&mut self, flexible: bool) -> Option<&'a str> {
        let len = self.nullable_len(flexible, 2)??;
        std::str::from_utf8(self.take(len)?).ok()
    }

    /// An array's element count; null counts as empty.
    pub fn array_len(&mut self, flexible: bool) -> Option<usize> {
        Some(self.nullable_len(flexible, 4)?.unwrap_or(0))
    }

    /// A nullable byte field's length; null counts as empty.
    pub fn bytes_len(&mut self, flexible: bool) -> Option<usize> {
        Some(self.nullable_len(flexible, 4)?.unwrap_or(0))
    }

    pub fn skip_tagged_fields(&mut self) -> Option<()> {
        for _ in 0..self.unsigned_varint()? {
            self.unsigned_varint()?; // tag
            let len = usize::try_from(self.unsigned_varint()?).ok()?;
            self.skip(len)?;
        }
        Some(())
    }
}
