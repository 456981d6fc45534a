//! The backup directory's files: what they hold, how they are written and read back.
//!
//! ```text
//! DIR/runs/<run>/snapshot-<n>.lks   a database image at one WAL position, zstd, sha-256
//! DIR/runs/<run>/wal-<n>.lkw        WAL frames shipped after it, as checksummed records
//! DIR/requests/                     `lookout backup now` asks the running server here
//! DIR/.lock                         held by the server that ships into DIR
//! ```
//!
//! A *run* is one server's shipping from start to stop; it opens with a snapshot, so it stands
//! on its own. `<run>` sorts by start time and `<n>` by order within the run: a snapshot `n`
//! holds the state after every record in the run's files below `n`, and the records in files
//! above `n` continue from exactly there.
//!
//! A WAL file is a sequence of records, appended and fsynced as they are shipped:
//! `"LKW1" | header length u32 | payload length u32 | sha-256(header ‖ payload) | header JSON |
//! zstd(frames)`. A crash can leave a torn last record; reading stops at the first record that
//! does not check out. A snapshot is written whole under a temporary name and renamed:
//! `zstd(database) | header JSON | header length u32 | "LKS1"`, its header carrying the
//! payload's sha-256.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::wal::Generation;

const RECORD_MAGIC: &[u8; 4] = b"LKW1";
const SNAPSHOT_MAGIC: &[u8; 4] = b"LKS1";
/// A record's fixed prefix: magic, two lengths, sha-256.
const RECORD_PREFIX: usize = 4 + 4 + 4 + 32;
/// Largest header or payload a record may claim (a corrupt length must not allocate gigabytes).
const MAX_PART: u32 = 1 << 30;
/// Largest decompressed payload a record may hold (one checkpoint tick's frames).
pub const MAX_FRAMES: u64 = 1 << 30;

/// Shipped frames and when their transactions committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordHeader {
    /// The WAL generation, hex.
    pub gen: String,
    /// First and last frame number in the payload (1-based, inclusive); `last < first` for a
    /// record that only says the stream is alive.
    pub first: u32,
    pub last: u32,
    /// Database page size.
    pub page_size: u32,
    /// `[commit frame, committed by (ms)]` for each transaction in the payload, in order.
    pub commits: Vec<(u32, i64)>,
    /// Every transaction committed before this time (ms) is in this record or an earlier one.
    pub covered_until: i64,
}

/// A record as read back.
#[derive(Debug, Clone)]
pub struct Record {
    pub header: RecordHeader,
    /// zstd-compressed frames.
    pub payload: Vec<u8>,
}

impl Record {
    /// The frames, decompressed (refusing more than [`MAX_FRAMES`]: a damaged payload must not
    /// inflate into gigabytes).
    pub fn frames(&self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        zstd::Decoder::new(&self.payload[..])?
            .take(MAX_FRAMES + 1)
            .read_to_end(&mut out)?;
        if out.len() as u64 > MAX_FRAMES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a record's frames inflate past 1 GiB",
            ));
        }
        Ok(out)
    }
}

/// Encodes one record. `frames` are raw WAL frames.
pub fn encode_record(header: &RecordHeader, frames: &[u8]) -> std::io::Result<Vec<u8>> {
    // Level 1: shipping runs beside ingest, and WAL pages compress well even so.
    let payload = zstd::encode_all(frames, 1)?;
    let head = serde_json::to_vec(header).map_err(std::io::Error::other)?;
    let mut sha = Sha256::new();
    sha.update(&head);
    sha.update(&payload);
    let mut out = Vec::with_capacity(RECORD_PREFIX + head.len() + payload.len());
    out.extend_from_slice(RECORD_MAGIC);
    out.extend((head.len() as u32).to_be_bytes());
    out.extend((payload.len() as u32).to_be_bytes());
    out.extend(sha.finalize());
    out.extend(head);
    out.extend(payload);
    Ok(out)
}

/// Why reading a WAL file stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// The file ended at a record boundary.
    Clean,
    /// Bytes after the last good record that do not form a record (a torn write at a crash,
    /// or damage): what was wrong.
    Bad(String),
}

/// Decodes the records in `bytes`, up to the first one that does not check out.
pub fn decode_records(bytes: &[u8]) -> (Vec<Record>, Tail) {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match decode_one(&bytes[at..]) {
            Ok((record, used)) => {
                out.push(record);
                at += used;
            }
            Err(why) => return (out, Tail::Bad(format!("at byte {at}: {why}"))),
        }
    }
    (out, Tail::Clean)
}

/// The header of the last whole record in WAL file `path`, reading only record prefixes and
/// headers (payloads are skipped, not checked: for listings, not restores).
pub fn last_record_header(path: &Path) -> std::io::Result<Option<RecordHeader>> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let size = f.metadata()?.len();
    let (mut at, mut last) = (0u64, None);
    let mut prefix = [0u8; RECORD_PREFIX];
    while at + RECORD_PREFIX as u64 <= size {
        f.seek(SeekFrom::Start(at))?;
        f.read_exact(&mut prefix)?;
        if &prefix[..4] != RECORD_MAGIC {
            break;
        }
        let len =
            |i: usize| u32::from_be_bytes([prefix[i], prefix[i + 1], prefix[i + 2], prefix[i + 3]]);
        let (head_len, payload_len) = (len(4), len(8));
        let end = at + RECORD_PREFIX as u64 + u64::from(head_len) + u64::from(payload_len);
        if head_len > MAX_PART || payload_len > MAX_PART || end > size {
            break;
        }
        let mut head = vec![0u8; head_len as usize];
        f.read_exact(&mut head)?;
        match serde_json::from_slice(&head) {
            Ok(h) => last = Some(h),
            Err(_) => break,
        }
        at = end;
    }
    Ok(last)
}

fn decode_one(b: &[u8]) -> Result<(Record, usize), String> {
    if b.len() < RECORD_PREFIX {
        return Err("short record prefix".into());
    }
    if &b[..4] != RECORD_MAGIC {
        return Err("not a record".into());
    }
    let len = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let (head_len, payload_len) = (len(4), len(8));
    if head_len > MAX_PART || payload_len > MAX_PART {
        return Err("implausible length".into());
    }
    let end = RECORD_PREFIX + head_len as usize + payload_len as usize;
    if b.len() < end {
        return Err("record cut short".into());
    }
    let body = &b[RECORD_PREFIX..end];
    if Sha256::digest(body)[..] != b[12..44] {
        return Err("checksum mismatch".into());
    }
    let (head, payload) = body.split_at(head_len as usize);
    let header: RecordHeader =
        serde_json::from_slice(head).map_err(|e| format!("bad record header: {e}"))?;
    Ok((
        Record {
            header,
            payload: payload.to_vec(),
        },
        end,
    ))
}

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// The WAL generation and frame it was taken at: the image holds every transaction up to
    /// and including that frame (frame 0: none of that generation's).
    pub gen: String,
    pub frame: u32,
    /// Database page size (0 when unknown: the database had no WAL yet).
    pub page_size: u32,
    /// Every transaction in the image committed by this time (ms).
    pub as_of: i64,
    /// When it was written (ms).
    pub taken_at: i64,
    /// Size of the database image.
    pub db_bytes: u64,
    /// sha-256 of the compressed payload, hex.
    pub sha256: String,
}

/// Writes the database image in `image` as snapshot file `path` (via a temporary name, then
/// fsync and rename). Fills in `db_bytes` and `sha256`.
pub fn write_snapshot(
    path: &Path,
    image: &Path,
    mut header: SnapshotHeader,
) -> std::io::Result<SnapshotHeader> {
    let tmp = path.with_extension("tmp");
    let mut out = std::fs::File::create(&tmp)?;
    let mut src = std::fs::File::open(image)?;
    header.db_bytes = src.metadata()?.len();
    let hashing = HashingWriter {
        inner: &mut out,
        sha: Sha256::new(),
    };
    let mut enc = zstd::Encoder::new(hashing, 3)?;
    std::io::copy(&mut src, &mut enc)?;
    let hashing = enc.finish()?;
    header.sha256 = hex::encode(hashing.sha.finalize());
    let head = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
    out.write_all(&head)?;
    out.write_all(&(head.len() as u32).to_be_bytes())?;
    out.write_all(SNAPSHOT_MAGIC)?;
    out.sync_all()?;
    drop(out);
    std::fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    Ok(header)
}

struct HashingWriter<'a> {
    inner: &'a mut std::fs::File,
    sha: Sha256,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reads a snapshot's header (from the end of the file) and the payload's length.
pub fn read_snapshot_header(path: &Path) -> std::io::Result<(SnapshotHeader, u64)> {
    use std::io::{Seek, SeekFrom};
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
    let mut f = std::fs::File::open(path)?;
    let size = f.metadata()?.len();
    if size < 8 {
        return Err(bad("snapshot too short"));
    }
    let mut tail = [0u8; 8];
    f.seek(SeekFrom::Start(size - 8))?;
    f.read_exact(&mut tail)?;
    if &tail[4..] != SNAPSHOT_MAGIC {
        return Err(bad("not a snapshot (no trailer)"));
    }
    let head_len = u64::from(u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if head_len + 8 > size || head_len > u64::from(MAX_PART) {
        return Err(bad("snapshot header length out of range"));
    }
    let mut head = vec![0u8; head_len as usize];
    f.seek(SeekFrom::Start(size - 8 - head_len))?;
    f.read_exact(&mut head)?;
    let header =
        serde_json::from_slice(&head).map_err(|e| bad(&format!("snapshot header: {e}")))?;
    Ok((header, size - 8 - head_len))
}

/// Checks a snapshot's payload against its checksum and writes the database image to `to`.
pub fn restore_snapshot(path: &Path, to: &Path) -> std::io::Result<SnapshotHeader> {
    let (header, payload_len) = read_snapshot_header(path)?;
    let f = std::fs::File::open(path)?;
    let mut sha = Sha256::new();
    let decoded = {
        let mut hashed = HashingReader {
            inner: f.take(payload_len),
            sha: &mut sha,
        };
        let decoded = (|| {
            let mut dec = zstd::Decoder::new(&mut hashed)?;
            let mut out = std::fs::File::create(to)?;
            std::io::copy(&mut dec, &mut out)?;
            out.sync_all()
        })();
        // Hash whatever zstd did not read (all of it after a decoding error), so a damaged
        // file is reported as failing its checksum rather than as a zstd error.
        std::io::copy(&mut hashed, &mut std::io::sink())?;
        decoded
    };
    if hex::encode(sha.finalize()) != header.sha256 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("snapshot {} fails its checksum", path.display()),
        ));
    }
    decoded?;
    Ok(header)
}

struct HashingReader<'a, R> {
    inner: R,
    sha: &'a mut Sha256,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}

/// fsyncs a directory so a rename or new file in it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Hex text of a generation.
pub fn gen_hex(g: &Generation) -> String {
    hex::encode(g)
}

/// One file of a run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunFile {
    /// Order within the run.
    pub n: u32,
    /// Snapshot or WAL records.
    pub kind: FileKind,
    pub path: PathBuf,
}

/// The two kinds of file in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    Snapshot,
    Wal,
}

/// A run directory and its files in order.
#[derive(Debug, Clone)]
pub struct Run {
    pub name: String,
    pub dir: PathBuf,
    pub files: Vec<RunFile>,
}

/// The file name of file `n` of `kind`.
pub fn file_name(kind: FileKind, n: u32) -> String {
    match kind {
        FileKind::Snapshot => format!("snapshot-{n:06}.lks"),
        FileKind::Wal => format!("wal-{n:06}.lkw"),
    }
}

fn parse_file_name(name: &str) -> Option<(FileKind, u32)> {
    let (kind, rest) = if let Some(r) = name.strip_prefix("snapshot-") {
        (FileKind::Snapshot, r.strip_suffix(".lks")?)
    } else {
        (
            FileKind::Wal,
            name.strip_prefix("wal-")?.strip_suffix(".lkw")?,
        )
    };
    Some((kind, rest.parse().ok()?))
}

/// The runs in backup directory `dir`, oldest first, each with its files in order.
pub fn list_runs(dir: &Path) -> std::io::Result<Vec<Run>> {
    let runs_dir = dir.join("runs");
    let mut runs = Vec::new();
    let entries = match std::fs::read_dir(&runs_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(runs),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut files = Vec::new();
        for f in std::fs::read_dir(entry.path())? {
            let f = f?;
            if let Some((kind, n)) = parse_file_name(&f.file_name().to_string_lossy()) {
                files.push(RunFile {
                    n,
                    kind,
                    path: f.path(),
                });
            }
        }
        files.sort();
        runs.push(Run {
            name,
            dir: entry.path(),
            files,
        });
    }
    runs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(first: u32, last: u32) -> RecordHeader {
        RecordHeader {
            gen: "0102030405060708".into(),
            first,
            last,
            page_size: 4096,
            commits: vec![(last, 1_000)],
            covered_until: 2_000,
        }
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_reported() {
        let mut file = encode_record(&header(1, 2), &[7u8; 100]).unwrap();
        file.extend(encode_record(&header(3, 3), &[9u8; 50]).unwrap());
        let whole = file.len();
        let (records, tail) = decode_records(&file);
        assert_eq!(tail, Tail::Clean);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].header, header(1, 2));
        assert_eq!(records[1].frames().unwrap(), vec![9u8; 50]);
        // Listings read only the last record's header.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(FileKind::Wal, 1));
        std::fs::write(&path, &file).unwrap();
        assert_eq!(last_record_header(&path).unwrap(), Some(header(3, 3)));
        std::fs::write(&path, &file[..whole - 5]).unwrap();
        assert_eq!(last_record_header(&path).unwrap(), Some(header(1, 2)));
        // A crash mid-append: the second record is cut; the first still reads.
        let (records, tail) = decode_records(&file[..whole - 5]);
        assert_eq!(records.len(), 1);
        assert!(matches!(tail, Tail::Bad(why) if why.contains("cut short")));
        // A flipped byte in the payload fails the checksum.
        file[whole - 3] ^= 0xff;
        let (records, tail) = decode_records(&file);
        assert_eq!(records.len(), 1);
        assert!(matches!(tail, Tail::Bad(why) if why.contains("checksum")));
    }

    #[test]
    fn snapshots_round_trip_and_damage_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("db");
        std::fs::write(&image, vec![42u8; 10_000]).unwrap();
        let path = dir.path().join(file_name(FileKind::Snapshot, 1));
        let h = SnapshotHeader {
            gen: "00".into(),
            frame: 5,
            page_size: 4096,
            as_of: 1,
            taken_at: 2,
            db_bytes: 0,
            sha256: String::new(),
        };
        let written = write_snapshot(&path, &image, h).unwrap();
        assert_eq!(written.db_bytes, 10_000);
        let out = dir.path().join("out");
        assert_eq!(restore_snapshot(&path, &out).unwrap(), written);
        assert_eq!(std::fs::read(&out).unwrap(), vec![42u8; 10_000]);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[3] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert!(restore_snapshot(&path, &out).is_err());
        assert_eq!(parse_file_name("wal-000012.lkw"), Some((FileKind::Wal, 12)));
        assert_eq!(parse_file_name("notes.txt"), None);
    }
}
