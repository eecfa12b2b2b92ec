//! Property tests for the request parser: arbitrary and mutated input never
//! panics, never reads past the buffer, never allocates from a length
//! header, and feeding a stream in pieces gives the same requests as whole.

use ferrite::protocol::{Argv, Limits, ProtocolError, parse_request};
use proptest::prelude::*;

const LIMITS: Limits = Limits { max_bulk_len: 512 << 20, unauthenticated: false };

/// Parses a whole stream the way a connection does: requests until an error
/// or until more bytes are needed.
fn parse_all(buf: &[u8]) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>, usize) {
    let mut argv = Argv::default();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        match parse_request(&buf[pos..], &LIMITS, &mut argv) {
            Ok(None) => return (out, None, pos),
            Ok(Some(n)) => {
                assert!(n > 0 && pos + n <= buf.len(), "consumed {n} at {pos} of {}", buf.len());
                if !argv.is_empty() {
                    out.push(argv.iter(&buf[pos..]).map(|a| a.to_vec()).collect());
                }
                pos += n;
            }
            Err(e) => return (out, Some(e), pos),
        }
    }
}

/// Feeds `stream` `piece` bytes at a time into one growing buffer with one
/// `Argv`, as a connection does, and collects the requests.
fn trickle(stream: &[u8], piece: usize) -> Vec<Vec<Vec<u8>>> {
    let (mut argv, mut buf, mut out) = (Argv::default(), Vec::new(), Vec::new());
    for chunk in stream.chunks(piece) {
        buf.extend_from_slice(chunk);
        while let Some(n) = parse_request(&buf, &LIMITS, &mut argv).expect("well-formed") {
            if !argv.is_empty() {
                out.push(argv.iter(&buf).map(|a| a.to_vec()).collect());
            }
            buf.drain(..n);
        }
    }
    out
}

/// A request of many arguments trickling in a few bytes at a time costs
/// what it sends: each read resumes where the last one stopped (every read
/// used to parse the request from its start again).
#[test]
fn a_trickling_request_is_parsed_once() {
    let args: Vec<Vec<u8>> = (0..50_000).map(|i| (i % 10).to_string().into_bytes()).collect();
    let stream = encode(&args);
    let start = std::time::Instant::now();
    assert_eq!(trickle(&stream, 8), vec![args]);
    assert!(start.elapsed() < std::time::Duration::from_secs(2), "took {:?}", start.elapsed());
}

fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend(format!("${}\r\n", a.len()).into_bytes());
        v.extend(a);
        v.extend(b"\r\n");
    }
    v
}

fn command() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_all(&buf);
    }

    #[test]
    fn encoded_commands_round_trip(cmds in prop::collection::vec(command(), 1..8)) {
        let stream: Vec<u8> = cmds.iter().flat_map(|c| encode(c)).collect();
        let (got, err, used) = parse_all(&stream);
        prop_assert_eq!(err, None);
        prop_assert_eq!(used, stream.len());
        prop_assert_eq!(got, cmds);
    }

    #[test]
    fn split_feeding_matches_whole(cmds in prop::collection::vec(command(), 1..5), cut in any::<prop::sample::Index>()) {
        let stream: Vec<u8> = cmds.iter().flat_map(|c| encode(c)).collect();
        let cut = cut.index(stream.len() + 1);
        let (first, _, used) = parse_all(&stream[..cut]);
        let (rest, err, _) = parse_all(&stream[used..]);
        prop_assert_eq!(err, None);
        let mut all = first;
        all.extend(rest);
        prop_assert_eq!(all, cmds);
    }

    #[test]
    fn feeding_piece_by_piece_resumes_to_the_same_requests(cmds in prop::collection::vec(command(), 1..5), piece in 1usize..9) {
        let stream: Vec<u8> = cmds.iter().flat_map(|c| encode(c)).collect();
        prop_assert_eq!(trickle(&stream, piece), cmds);
    }

    #[test]
    fn mutated_streams_never_panic(cmds in prop::collection::vec(command(), 1..4), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6)) {
        let mut stream: Vec<u8> = cmds.iter().flat_map(|c| encode(c)).collect();
        for (at, byte, kind) in edits {
            let i = at.index(stream.len().max(1));
            match kind {
                0 if !stream.is_empty() => stream[i] = byte,
                1 => stream.insert(i.min(stream.len()), byte),
                _ if !stream.is_empty() => { stream.remove(i); }
                _ => {}
            }
        }
        let _ = parse_all(&stream);
    }

    #[test]
    fn huge_counts_allocate_nothing(n in 1_000_000i64..i32::MAX as i64) {
        let header = format!("*{n}\r\n$5\r\nhello\r\n");
        let mut argv = Argv::default();
        prop_assert_eq!(parse_request(header.as_bytes(), &LIMITS, &mut argv), Ok(None));
        prop_assert!(argv.len() <= 1);
    }
}
