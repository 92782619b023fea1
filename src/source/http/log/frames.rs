//! A log's frames: encoding a request, and reading frames back.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::{ADVANCE, Entry, HEADER, LogError, MAX_FRAME, RECORDS};
use crate::pipeline::Time;

pub(super) fn encode_records(records: &[&[u8]]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(5 + records.iter().map(|r| r.len() + 4).sum::<usize>());
    payload.push(RECORDS);
    payload.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for record in records {
        payload.extend_from_slice(&(record.len() as u32).to_le_bytes());
        payload.extend_from_slice(record);
    }
    framed(payload)
}

pub(super) fn encode_advance(watermark: Time) -> Vec<u8> {
    let mut payload = vec![ADVANCE];
    payload.extend_from_slice(&watermark.to_le_bytes());
    framed(payload)
}

fn framed(payload: Vec<u8>) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 8);
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    frame
}

fn decode(payload: &[u8]) -> Option<Entry> {
    let (&kind, mut rest) = payload.split_first()?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
        rest = tail;
        Some(head)
    };
    let u32_at = |bytes: &[u8]| u32::from_le_bytes(bytes.try_into().expect("4 bytes")) as usize;
    let entry = match kind {
        RECORDS => {
            let count = u32_at(take(4)?);
            let mut records = Vec::with_capacity(count.min(1 << 16));
            for _ in 0..count {
                let len = u32_at(take(4)?);
                records.push(take(len)?.to_vec());
            }
            Entry::Records(records)
        }
        ADVANCE => Entry::Advance(u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"))),
        _ => return None,
    };
    rest.is_empty().then_some(entry)
}

/// Reads the frames of `file` (`length` bytes): the entries and the length of the
/// part that holds whole frames.
pub(super) fn read_frames(
    path: &Path,
    file: &mut File,
    length: u64,
    after: u64,
) -> Result<(Vec<Entry>, u64), LogError> {
    let io = |source| LogError::Io { path: path.to_path_buf(), source };
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut reader = BufReader::with_capacity(1 << 20, &mut *file);
    let mut header = [0u8; HEADER.len()];
    if length < HEADER.len() as u64 || reader.read_exact(&mut header).is_err() || &header != HEADER {
        return Err(LogError::Header { path: path.to_path_buf() });
    }
    let mut entries = Vec::new();
    let mut offset = HEADER.len() as u64;
    // A checkpoint holds everything before `after` (a frame's end, made durable before
    // the checkpoint was): what precedes it may be a hole, and is not read.
    if after > offset {
        reader.seek(SeekFrom::Start(after)).map_err(io)?;
        offset = after;
    }
    loop {
        let remaining = length - offset;
        if remaining == 0 {
            return Ok((entries, offset));
        }
        let damaged = |why| LogError::Damaged { path: path.to_path_buf(), offset, why };
        if remaining < 8 {
            return Ok((entries, offset)); // a torn frame head
        }
        let mut head = [0u8; 8];
        reader.read_exact(&mut head).map_err(io)?;
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        if len > MAX_FRAME {
            return Err(damaged("a length beyond any frame"));
        }
        let end = offset + 8 + u64::from(len);
        if end > length {
            return Ok((entries, offset)); // a torn frame body
        }
        let mut payload = vec![0u8; len as usize];
        reader.read_exact(&mut payload).map_err(io)?;
        let entry = (crc32fast::hash(&payload) == crc).then(|| decode(&payload)).flatten();
        match entry {
            Some(entry) => entries.push(entry),
            // The last frame, written in part before a crash: never acknowledged.
            None if end == length => return Ok((entries, offset)),
            None => return Err(damaged("its checksum or contents do not match")),
        }
        offset = end;
    }
}
