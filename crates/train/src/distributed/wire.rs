//! What the ranks send each other over TCP: a hello when a rank connects, then frames, each
//! a kind byte, a count (u64, little-endian) and the payload: `count` f32s (little-endian) or
//! an error message of `count` bytes. A reader knows how many numbers to expect and refuses
//! any other count before it allocates.

use std::io::{Error, ErrorKind, Read, Write};

const MAGIC: &[u8; 4] = b"HHDP";
const VERSION: u32 = 1;
const VALUES: u8 = 0;
const ERROR: u8 = 1;
/// The longest error message a rank accepts.
const MAX_MESSAGE: u64 = 64 * 1024;

/// One message after the hello.
pub(super) enum Frame {
    Values(Vec<f32>),
    Error(String),
}

/// Sends `values` as one values frame.
pub(super) fn write_values(stream: &mut impl Write, values: &[f32]) -> std::io::Result<()> {
    let payload: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_frame(stream, VALUES, values.len(), &payload)
}

/// Sends `message` as one error frame.
pub(super) fn write_error(stream: &mut impl Write, message: &str) -> std::io::Result<()> {
    write_frame(stream, ERROR, message.len(), message.as_bytes())
}

fn write_frame(
    stream: &mut impl Write,
    kind: u8,
    count: usize,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut head = vec![kind];
    head.extend_from_slice(&(count as u64).to_le_bytes());
    stream.write_all(&head)?;
    stream.write_all(payload)?;
    stream.flush()
}

impl Frame {
    /// The next frame; a values frame must hold exactly `expected` numbers.
    pub(super) fn read(stream: &mut impl Read, expected: usize) -> std::io::Result<Frame> {
        let mut head = [0u8; 9];
        stream.read_exact(&mut head)?;
        let count = u64::from_le_bytes(head[1..].try_into().expect("8 bytes"));
        match head[0] {
            VALUES if count == expected as u64 => {
                let mut bytes = vec![0u8; expected * 4];
                stream.read_exact(&mut bytes)?;
                Ok(Frame::Values(
                    bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                ))
            }
            VALUES => Err(invalid(format!(
                "sent {count} numbers where this rank has {expected}: the ranks are not \
                 running the same model and stage"
            ))),
            ERROR if count <= MAX_MESSAGE => {
                let mut bytes = vec![0u8; count as usize];
                stream.read_exact(&mut bytes)?;
                Ok(Frame::Error(String::from_utf8_lossy(&bytes).into_owned()))
            }
            kind => Err(invalid(format!(
                "sent a frame this version does not know (kind {kind}, count {count})"
            ))),
        }
    }
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidData, message)
}

pub(super) fn write_hello(
    stream: &mut impl Write,
    rank: usize,
    nodes: usize,
) -> std::io::Result<()> {
    let mut hello = MAGIC.to_vec();
    for n in [VERSION, rank as u32, nodes as u32] {
        hello.extend_from_slice(&n.to_le_bytes());
    }
    stream.write_all(&hello)?;
    stream.flush()
}

/// A connecting rank's hello: its rank, checked against this run's `nodes`.
pub(super) fn read_hello(stream: &mut impl Read, nodes: usize) -> Result<usize, String> {
    let (rank, their_nodes) = read_header(stream)?;
    if their_nodes != nodes {
        return Err(format!(
            "rank {rank} runs with distributed.nodes {their_nodes}, this one with {nodes}: \
             give every rank the same"
        ));
    }
    if rank == 0 || rank >= nodes {
        return Err(format!(
            "says it is rank {rank}, but ranks 1..{} connect",
            nodes - 1
        ));
    }
    Ok(rank)
}

/// Rank 0's answer to a hello: its own hello, or an error frame saying what is wrong.
pub(super) fn read_answer(stream: &mut impl Read, nodes: usize) -> Result<(), String> {
    let mut first = [0u8; 1];
    stream
        .read_exact(&mut first)
        .map_err(|e| format!("no answer to this rank's hello ({e})"))?;
    if first[0] == ERROR {
        let mut rest = [0u8; 8];
        stream.read_exact(&mut rest).map_err(|e| e.to_string())?;
        let count = u64::from_le_bytes(rest).min(MAX_MESSAGE) as usize;
        let mut bytes = vec![0u8; count];
        stream.read_exact(&mut bytes).map_err(|e| e.to_string())?;
        return Err(String::from_utf8_lossy(&bytes).into_owned());
    }
    let mut header = vec![first[0]];
    let mut rest = [0u8; 15];
    stream.read_exact(&mut rest).map_err(|e| e.to_string())?;
    header.extend_from_slice(&rest);
    let (_, their_nodes) = read_header(&mut header.as_slice())?;
    if their_nodes != nodes {
        return Err(format!(
            "rank 0 runs with distributed.nodes {their_nodes}, this one with {nodes}: give \
             every rank the same"
        ));
    }
    Ok(())
}

fn read_header(stream: &mut impl Read) -> Result<(usize, usize), String> {
    let mut header = [0u8; 16];
    stream
        .read_exact(&mut header)
        .map_err(|e| format!("no complete hello ({e})"))?;
    if &header[..4] != MAGIC {
        return Err("not a hedgehog rank (another program at that address?)".into());
    }
    let field = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
    if field(4) != VERSION {
        return Err(format!(
            "speaks version {} of the rank protocol, this build {VERSION}: run the same \
             hedgehog build on every rank",
            field(4)
        ));
    }
    Ok((field(8) as usize, field(12) as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_a_wrong_count_is_refused_before_reading_it() {
        let mut bytes = Vec::new();
        write_values(&mut bytes, &[1.5, -2.0, f32::MIN_POSITIVE]).unwrap();
        write_error(&mut bytes, "stopped").unwrap();
        let mut reader = bytes.as_slice();
        let Frame::Values(values) = Frame::read(&mut reader, 3).unwrap() else {
            panic!("values expected")
        };
        assert_eq!(values, vec![1.5, -2.0, f32::MIN_POSITIVE]);
        let Frame::Error(message) = Frame::read(&mut reader, 3).unwrap() else {
            panic!("an error expected")
        };
        assert_eq!(message, "stopped");

        let mut huge = vec![VALUES];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        let error = Frame::read(&mut huge.as_slice(), 3).err().unwrap();
        assert_eq!(error.kind(), ErrorKind::InvalidData);
        assert!(
            error.to_string().contains("where this rank has 3"),
            "{error}"
        );
    }

    #[test]
    fn a_hello_carries_rank_and_nodes_and_a_stranger_is_refused() {
        let mut bytes = Vec::new();
        write_hello(&mut bytes, 2, 4).unwrap();
        assert_eq!(read_hello(&mut bytes.as_slice(), 4), Ok(2));
        assert!(
            read_hello(&mut bytes.as_slice(), 3)
                .unwrap_err()
                .contains("nodes 4")
        );
        let stranger = b"GET / HTTP/1.1\r\n\r\n";
        assert!(
            read_hello(&mut stranger.as_slice(), 4)
                .unwrap_err()
                .contains("not a hedgehog")
        );
    }
}
