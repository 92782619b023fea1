//! The log's tests: entries back in order, torn tails, damage, concurrency, clock moves.

use std::sync::Arc;

use super::*;

fn records(texts: &[&str]) -> Entry {
    Entry::Records(texts.iter().map(|t| t.as_bytes().to_vec()).collect())
}

fn encode(entry: &Entry) -> Vec<u8> {
    match entry {
        Entry::Records(records) => encode_records(&records.iter().map(Vec::as_slice).collect::<Vec<_>>()),
        Entry::Advance(watermark) => encode_advance(*watermark),
    }
}

fn append(log: &Log, entry: &Entry) {
    match entry {
        Entry::Records(records) => {
            log.append(Write::Records(&records.iter().map(Vec::as_slice).collect::<Vec<_>>()), || ()).unwrap()
        }
        Entry::Advance(watermark) => log.append(Write::Advance(*watermark), || ()).unwrap(),
    }
}

#[test]
fn entries_come_back_in_order_and_torn_tails_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j").join("events.log");
    let (log, entries, torn) = Log::open(&path).unwrap();
    assert!(entries.is_empty() && torn == 0);
    let written = [records(&["a", "bc"]), Entry::Advance(7), records(&[]), records(&["{\"x\": 1}"])];
    for entry in &written {
        append(&log, entry);
    }
    assert_eq!(log.position().0, 4);
    drop(log);
    let (_, entries, torn) = Log::open(&path).unwrap();
    assert_eq!((entries.as_slice(), torn), (&written[..], 0));

    // A crash in the middle of the next frame: its part is cut, the rest stays.
    let whole = std::fs::metadata(&path).unwrap().len();
    let frame = encode(&records(&["lost"]));
    for cut in [1, 8, frame.len() - 1] {
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&frame[..cut]).unwrap();
        drop(file);
        let (log, entries, torn) = Log::open(&path).unwrap();
        assert_eq!((entries.as_slice(), torn), (&written[..], cut as u64), "cut at {cut}");
        assert_eq!(log.position(), (4, whole));
    }
}

#[test]
fn damage_before_the_end_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.log");
    let (log, _, _) = Log::open(&path).unwrap();
    append(&log, &records(&["first"]));
    append(&log, &records(&["second"]));
    drop(log);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[HEADER.len() + 8] ^= 0xff; // the first frame's payload
    std::fs::write(&path, &bytes).unwrap();
    let error = Log::open(&path).err().expect("damaged");
    assert!(matches!(error, LogError::Damaged { offset: 8, .. }), "{error}");
    // Only the last frame damaged: taken for a torn write, cut off.
    bytes[HEADER.len() + 8] ^= 0xff;
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (_, entries, torn) = Log::open(&path).unwrap();
    assert_eq!((entries, torn), (vec![records(&["first"])], encode(&records(&["second"])).len() as u64));
    std::fs::write(&path, b"something else").unwrap();
    assert!(matches!(Log::open(&path), Err(LogError::Header { .. })));
}

#[test]
fn concurrent_appends_are_applied_in_log_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.log");
    let (log, _, _) = Log::open(&path).unwrap();
    let log = Arc::new(log);
    let applied = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (log, applied) = (log.clone(), applied.clone());
            std::thread::spawn(move || {
                for i in 0..50 {
                    let text = format!("{t}-{i}");
                    let kept = records(&[&text]);
                    log.append(Write::Records(&[text.as_bytes()]), || applied.lock().unwrap().push(kept)).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    drop(log);
    let (_, entries, _) = Log::open(&path).unwrap();
    assert_eq!(entries.len(), 200);
    assert_eq!(entries, *applied.lock().unwrap());
}

#[test]
fn unsynced_advances_keep_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.log");
    let (log, _, _) = Log::open(&path).unwrap();
    append(&log, &records(&["a"]));
    log.append(Write::ClockMove(90), || ()).unwrap();
    append(&log, &records(&["b"]));
    // Consecutive moves of the clock: the latest takes the place of the others.
    for watermark in [100, 110, 120] {
        log.append(Write::ClockMove(watermark), || ()).unwrap();
    }
    let length = std::fs::metadata(&path).unwrap().len();
    append(&log, &records(&["c"]));
    log.append(Write::ClockMove(130), || ()).unwrap();
    drop(log);
    let (_, entries, _) = Log::open(&path).unwrap();
    let expected = [
        records(&["a"]),
        Entry::Advance(90),
        records(&["b"]),
        Entry::Advance(120),
        records(&["c"]),
        Entry::Advance(130),
    ];
    assert_eq!(entries, expected);
    let three_moves = HEADER.len() + encode(&records(&["a"])).len() * 2 + encode(&Entry::Advance(0)).len() * 2;
    assert_eq!(length, three_moves as u64, "three moves in a row take one frame");
}

#[test]
fn a_write_that_fails_applies_nothing_and_breaks_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.log");
    let (log, _, _) = Log::open(&path).unwrap();
    append(&log, &records(&["kept"]));
    log.refuse_writes();
    let mut applied = false;
    let error = log.append(Write::Records(&[b"lost"]), || applied = true).unwrap_err();
    assert!(matches!(error, LogError::Io { .. }), "{error}");
    let error = log.append(Write::Advance(5), || applied = true).unwrap_err();
    assert!(matches!(error, LogError::Broken { .. }), "{error}");
    assert!(error.to_string().contains("takes no more"), "{error}");
    assert!(!applied);
    drop(log);
    let (_, entries, torn) = Log::open(&path).unwrap();
    assert_eq!((entries, torn), (vec![records(&["kept"])], 0));
}

/// A checkpoint's pause syncs the log (clock moves included) and notes its length; once
/// the bytes before it are released, the file keeps its length but not their blocks,
/// and a restore reads only what follows it. A log shorter than its checkpoint says is
/// damaged.
#[test]
fn a_checkpoint_truncates_the_log_it_holds() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.log");
    let (log, _, _) = Log::open(&path).unwrap();
    let big = "x".repeat(4096);
    for _ in 0..64 {
        append(&log, &records(&[&big]));
    }
    log.append(Write::ClockMove(90), || ()).unwrap();
    let after = log.pause().unwrap().bytes;
    assert_eq!(log.position().1, after);
    // The move is sealed by the pause: the next one follows it.
    log.append(Write::ClockMove(95), || ()).unwrap();
    append(&log, &records(&["after"]));
    let blocks = std::fs::metadata(&path).unwrap().blocks();
    log.release_before(after);
    let released = std::fs::metadata(&path).unwrap();
    let whole = HEADER.len() as u64 + 64 * encode(&records(&[&big])).len() as u64;
    assert!(released.len() > whole, "the file keeps its length");
    assert!(released.blocks() < blocks / 4, "{} blocks of {blocks} still allocated", released.blocks());
    drop(log);

    let (log, entries, torn) = Log::open_after(&path, after).unwrap();
    assert_eq!((entries, torn), (vec![Entry::Advance(95), records(&["after"])], 0));
    drop(log);
    let length = std::fs::metadata(&path).unwrap().len();
    let error = Log::open_after(&path, length + 1).err().unwrap();
    assert!(matches!(error, LogError::Damaged { offset, .. } if offset == length), "{error}");
}
