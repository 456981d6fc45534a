//! SQLite's write-ahead log and wal-index, read from their files: the WAL header and frames
//! with their checksum chain, the wal-index header in `-shm`, and applying committed frames to a
//! database image.
//!
//! Written by hand because no maintained crate reads these formats (Litestream, the reference
//! tool, is Go and cannot be shipped with us); the formats are fixed by SQLite's file-format
//! document (<https://www.sqlite.org/fileformat.html#the_write_ahead_log>) and have not changed
//! since 3.7.0. Everything here treats its input as untrusted: a short or inconsistent file ends
//! the valid prefix, it never panics.

use std::io::{Read, Seek, SeekFrom, Write};

/// Bytes in the WAL file header.
pub const WAL_HEADER: usize = 32;
/// Bytes in each frame header.
pub const FRAME_HEADER: usize = 24;
const MAGIC_LE: u32 = 0x377f_0682;
const MAGIC_BE: u32 = 0x377f_0683;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Which WAL a frame belongs to: the header's two salts. SQLite changes them every time the WAL
/// starts over, so equal salts mean the same run of frames.
pub type Generation = [u8; 8];

/// A parsed WAL header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalHeader {
    /// Database page size in bytes.
    pub page_size: u32,
    /// The salts, which every valid frame repeats.
    pub generation: Generation,
    /// Whether checksums read the words big-endian (magic 0x377f0683).
    big_endian: bool,
    /// The running checksum after the header, which the first frame continues.
    pub checksum: [u32; 2],
}

/// Adds `data` (a multiple of 8 bytes) to a running WAL checksum.
fn checksum(big_endian: bool, mut s: [u32; 2], data: &[u8]) -> [u32; 2] {
    for pair in data.chunks_exact(8) {
        let word = |b: &[u8]| {
            let a = [b[0], b[1], b[2], b[3]];
            if big_endian {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        };
        s[0] = s[0].wrapping_add(word(&pair[..4])).wrapping_add(s[1]);
        s[1] = s[1].wrapping_add(word(&pair[4..])).wrapping_add(s[0]);
    }
    s
}

impl WalHeader {
    /// Parses and checks the 32-byte header; `None` when it is not a valid WAL header.
    pub fn parse(b: &[u8]) -> Option<WalHeader> {
        if b.len() < WAL_HEADER {
            return None;
        }
        let magic = be32(b, 0);
        let big_endian = match magic {
            MAGIC_BE => true,
            MAGIC_LE => false,
            _ => return None,
        };
        let page_size = be32(b, 8);
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return None;
        }
        let sum = checksum(big_endian, [0, 0], &b[..24]);
        if sum != [be32(b, 24), be32(b, 28)] {
            return None;
        }
        let mut generation = [0u8; 8];
        generation.copy_from_slice(&b[16..24]);
        Some(WalHeader {
            page_size,
            generation,
            big_endian,
            checksum: sum,
        })
    }

    /// Bytes in one frame (header and page).
    pub fn frame_size(&self) -> usize {
        FRAME_HEADER + self.page_size as usize
    }

    /// Checks frame `frame` (header and page) against the running checksum `running`; returns
    /// the checksum after it, or `None` when the frame is not a valid frame of this WAL.
    pub fn check_frame(&self, running: [u32; 2], frame: &[u8]) -> Option<[u32; 2]> {
        if frame.len() != self.frame_size() || frame[8..16] != self.generation {
            return None;
        }
        if be32(frame, 0) == 0 {
            return None;
        }
        let s = checksum(self.big_endian, running, &frame[..8]);
        let s = checksum(self.big_endian, s, &frame[FRAME_HEADER..]);
        (s == [be32(frame, 16), be32(frame, 20)]).then_some(s)
    }
}

/// The page number a frame writes.
pub fn frame_page(frame: &[u8]) -> u32 {
    be32(frame, 0)
}

/// For a commit frame, the database size in pages after the commit; 0 for other frames.
pub fn frame_commit_size(frame: &[u8]) -> u32 {
    be32(frame, 4)
}

/// What the wal-index (`-shm`) says about the WAL right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexHeader {
    /// The WAL generation (salts) the index describes.
    pub generation: Generation,
    /// Frames committed in that WAL: every frame up to here belongs to a committed transaction.
    pub max_frame: u32,
}

/// Reads the wal-index header from the `-shm` file, open in `shm`.
///
/// SQLite keeps two copies of the header and a writer updates them one after the other, so the
/// copies match only when no update is under way; a mismatch is retried. SQLite maps this file
/// shared, so a plain read sees what the connections in this process see. The header is in the
/// machine's byte order. `None` when the file is uninitialised or keeps changing.
///
/// The file must stay open for the life of the process (see [`LiveFile`]): closing any
/// descriptor of it would drop SQLite's POSIX locks on it.
pub fn read_index_header(shm: &std::fs::File) -> Option<IndexHeader> {
    use std::os::unix::fs::FileExt;
    for _ in 0..100 {
        let mut b = [0u8; 96];
        shm.read_exact_at(&mut b, 0).ok()?;
        if b[..48] != b[48..96] {
            std::thread::yield_now();
            continue;
        }
        // iVersion(4) unused(4) iChange(4) isInit(1) bigEndCksum(1) szPage(2) mxFrame(4)
        // nPage(4) aFrameCksum(8) aSalt(8) aCksum(8).
        if b[12] == 0 {
            return None;
        }
        let ne = |at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let mut generation = [0u8; 8];
        generation.copy_from_slice(&b[32..40]);
        return Some(IndexHeader {
            generation,
            max_frame: ne(16),
        });
    }
    None
}

/// A descriptor of one of SQLite's own files (the database, its `-shm`) that is never closed.
///
/// SQLite locks these files with POSIX advisory locks, which belong to the process, and closing
/// *any* descriptor of a file drops *all* of the process's locks on it: a plain
/// `File::open(...)` + drop beside a live connection silently frees its read marks and lets
/// checkpoints and WAL restarts run under readers (seen here as corrupt snapshots). So each file
/// is opened once and kept open until the process ends.
#[derive(Debug)]
pub struct LiveFile(std::mem::ManuallyDrop<std::fs::File>);

impl LiveFile {
    /// Opens `path` read-only, for good.
    pub fn open(path: &std::path::Path) -> std::io::Result<LiveFile> {
        Ok(LiveFile(std::mem::ManuallyDrop::new(std::fs::File::open(
            path,
        )?)))
    }

    /// The open file.
    pub fn file(&self) -> &std::fs::File {
        &self.0
    }

    /// Copies the whole file into `to` (positioned reads; the descriptor stays open).
    pub fn copy_to(&self, to: &std::path::Path) -> std::io::Result<u64> {
        use std::os::unix::fs::FileExt;
        let len = self.0.metadata()?.len();
        let mut out = std::fs::File::create(to)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0u64;
        while at < len {
            let n = ((len - at) as usize).min(buf.len());
            self.0.read_exact_at(&mut buf[..n], at)?;
            out.write_all(&buf[..n])?;
            at += n as u64;
        }
        out.sync_all()?;
        Ok(len)
    }

    /// The page size in a database file's header.
    pub fn page_size(&self) -> std::io::Result<u32> {
        use std::os::unix::fs::FileExt;
        let mut b = [0u8; 2];
        self.0.read_exact_at(&mut b, 16)?;
        Ok(match u16::from_be_bytes(b) {
            1 => 65_536,
            n => u32::from(n),
        })
    }
}

/// Reads frames `from..=to` (1-based) of the WAL at `wal`, checking each against the header and
/// the checksum chain; `chain` is the running checksum after frame `from - 1` (the header's own
/// for frame 1). Returns the frames' bytes and the checksum after the last one, or `None` when
/// the WAL no longer has that generation or a frame does not check out.
pub fn read_frames(
    wal: &mut std::fs::File,
    header: &WalHeader,
    chain: [u32; 2],
    from: u32,
    to: u32,
) -> std::io::Result<Option<(Vec<u8>, [u32; 2])>> {
    if to < from {
        return Ok(Some((Vec::new(), chain)));
    }
    let size = header.frame_size();
    let mut bytes = vec![0u8; size * (to - from + 1) as usize];
    wal.seek(SeekFrom::Start(
        (WAL_HEADER + size * (from as usize - 1)) as u64,
    ))?;
    if let Err(e) = wal.read_exact(&mut bytes) {
        return if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok(chain_after(header, chain, &bytes).map(|sum| (bytes, sum)))
}

/// The checksum chain after `frames` (whole frames), starting from `chain`; `None` when a frame
/// does not check out.
fn chain_after(header: &WalHeader, chain: [u32; 2], frames: &[u8]) -> Option<[u32; 2]> {
    let mut sum = chain;
    for frame in frames.chunks_exact(header.frame_size()) {
        sum = header.check_frame(sum, frame)?;
    }
    Some(sum)
}

/// Most frames read into memory at once when shipping or applying the WAL (16 MiB at 4 KiB
/// pages). A transaction longer than this is still read whole, as restore applies whole
/// transactions.
pub const CHUNK_FRAMES: u32 = 4_096;

/// Reads frames `from..=to` like [`read_frames`], but in pieces: each piece is whole
/// transactions (it ends at a commit frame) of at most [`CHUNK_FRAMES`] frames, or one longer
/// transaction. `piece` gets each piece's first frame number, its bytes and the checksum chain
/// after it. Frames after the last commit are left out (SQLite ignores them too). `Ok(false)`
/// when the WAL no longer has that generation or a frame does not check out (the pieces before
/// were passed on).
pub fn read_in_pieces<E: From<std::io::Error>>(
    wal: &mut std::fs::File,
    header: &WalHeader,
    chain: [u32; 2],
    from: u32,
    to: u32,
    mut piece: impl FnMut(u32, &[u8], [u32; 2]) -> Result<(), E>,
) -> Result<bool, E> {
    let size = header.frame_size();
    // The frames read but not passed on yet start at `first`, with the chain `chain_first`
    // before them and `chain_read` after them.
    let (mut first, mut chain_first, mut chain_read) = (from, chain, chain);
    let mut buf = Vec::new();
    loop {
        while let Some(n) = piece_len(&buf, size) {
            let whole = buf.get(..n * size).unwrap_or_default();
            let chain_cut = if whole.len() == buf.len() {
                chain_read
            } else {
                match chain_after(header, chain_first, whole) {
                    Some(c) => c,
                    None => return Ok(false),
                }
            };
            piece(first, whole, chain_cut)?;
            buf.drain(..n * size);
            first += n as u32;
            chain_first = chain_cut;
        }
        let next = first + (buf.len() / size) as u32;
        if next > to {
            return Ok(true);
        }
        let end = next.saturating_add(CHUNK_FRAMES - 1).min(to);
        let Some((bytes, after)) = read_frames(wal, header, chain_read, next, end)? else {
            return Ok(false);
        };
        buf.extend_from_slice(&bytes);
        chain_read = after;
    }
}

/// How many of the frames in `buf` make the next piece of [`read_in_pieces`]: up to the last
/// commit within the first [`CHUNK_FRAMES`] frames, else up to the first commit (one longer
/// transaction); `None` when `buf` holds no commit yet.
fn piece_len(buf: &[u8], size: usize) -> Option<usize> {
    let chunk = CHUNK_FRAMES as usize;
    let mut last = None;
    for (i, f) in buf.chunks_exact(size).enumerate() {
        if i >= chunk && last.is_some() {
            break;
        }
        if frame_commit_size(f) != 0 {
            last = Some(i + 1);
            if i >= chunk {
                break;
            }
        }
    }
    last
}

/// Reads and checks the header of the WAL file.
pub fn read_header(wal: &mut std::fs::File) -> std::io::Result<Option<WalHeader>> {
    let mut b = [0u8; WAL_HEADER];
    wal.seek(SeekFrom::Start(0))?;
    match wal.read_exact(&mut b) {
        Ok(()) => Ok(WalHeader::parse(&b)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Splits frames of `page_size` into transactions: each item is the frames up to and
/// including a commit frame. Trailing frames with no commit are left out (SQLite ignores them
/// too). `None` when the bytes are not whole frames.
pub fn transactions(frames: &[u8], page_size: u32) -> Option<Vec<&[u8]>> {
    let size = FRAME_HEADER + page_size as usize;
    if !frames.len().is_multiple_of(size) {
        return None;
    }
    let mut out = Vec::new();
    let mut start = 0;
    for (i, frame) in frames.chunks_exact(size).enumerate() {
        if frame_commit_size(frame) != 0 {
            out.push(&frames[start..(i + 1) * size]);
            start = (i + 1) * size;
        }
    }
    Some(out)
}

/// Writes one transaction's frames into the database image `db`: each page at its place, then
/// the file cut or grown to the size the commit frame records.
pub fn apply_transaction(
    db: &mut std::fs::File,
    frames: &[u8],
    page_size: u32,
) -> std::io::Result<()> {
    let size = FRAME_HEADER + page_size as usize;
    let mut commit = 0;
    for frame in frames.chunks_exact(size) {
        let page = frame_page(frame);
        if page == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "frame for page 0",
            ));
        }
        db.seek(SeekFrom::Start(u64::from(page - 1) * u64::from(page_size)))?;
        db.write_all(&frame[FRAME_HEADER..])?;
        commit = frame_commit_size(frame);
    }
    if commit != 0 {
        db.set_len(u64::from(commit) * u64::from(page_size))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(page_size: u32, salts: [u32; 2]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(MAGIC_LE.to_be_bytes());
        b.extend(3_007_000u32.to_be_bytes());
        b.extend(page_size.to_be_bytes());
        b.extend(0u32.to_be_bytes());
        b.extend(salts[0].to_be_bytes());
        b.extend(salts[1].to_be_bytes());
        let s = checksum(false, [0, 0], &b);
        b.extend(s[0].to_be_bytes());
        b.extend(s[1].to_be_bytes());
        b
    }

    fn frame(h: &WalHeader, chain: [u32; 2], page: u32, commit: u32, fill: u8) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend(page.to_be_bytes());
        f.extend(commit.to_be_bytes());
        f.extend(h.generation);
        let data = vec![fill; h.page_size as usize];
        let s = checksum(false, checksum(false, chain, &f[..8]), &data);
        f.extend(s[0].to_be_bytes());
        f.extend(s[1].to_be_bytes());
        f.extend(data);
        f
    }

    #[test]
    fn frames_check_against_the_chain_and_generation() {
        let h = WalHeader::parse(&header(512, [7, 9])).expect("valid header");
        let f1 = frame(&h, h.checksum, 1, 0, 0xaa);
        let after1 = h.check_frame(h.checksum, &f1).expect("frame 1 checks");
        let f2 = frame(&h, after1, 2, 2, 0xbb);
        assert!(h.check_frame(after1, &f2).is_some());
        // The same frame against the wrong running checksum, or with one byte changed, fails.
        assert!(h.check_frame(h.checksum, &f2).is_none());
        let mut bad = f2.clone();
        bad[100] ^= 1;
        assert!(h.check_frame(after1, &bad).is_none());
        // A frame of another generation fails even with a matching chain.
        let other = WalHeader::parse(&header(512, [8, 9])).unwrap();
        assert!(other.check_frame(after1, &f2).is_none());
        let mut all = f1.clone();
        all.extend(&f2);
        let txs = transactions(&all, 512).unwrap();
        assert_eq!(txs.len(), 1, "two frames, one commit");
        assert_eq!(txs[0].len(), all.len());
    }

    #[test]
    fn a_bad_header_is_refused() {
        let mut b = header(4096, [1, 2]);
        assert!(WalHeader::parse(&b).is_some());
        b[20] ^= 1;
        assert!(WalHeader::parse(&b).is_none(), "checksum no longer matches");
        assert!(
            WalHeader::parse(&header(1000, [1, 2])).is_none(),
            "not a power of two"
        );
        assert!(WalHeader::parse(&[0u8; 10]).is_none());
    }

    #[test]
    fn the_wal_is_read_in_pieces_of_whole_transactions_keeping_the_chain() {
        let hb = header(512, [3, 4]);
        let h = WalHeader::parse(&hb).unwrap();
        // Transactions of 3 frames, one of CHUNK_FRAMES + 10 frames in the middle, then a tail
        // of 2 frames with no commit (a transaction being written).
        let mut sizes = vec![3u32; 2_000];
        sizes.insert(1_000, CHUNK_FRAMES + 10);
        let mut file = hb.clone();
        let mut chain = h.checksum;
        let mut commits = Vec::new();
        let mut n = 0u32;
        for (t, len) in sizes.iter().enumerate() {
            for i in 0..*len {
                n += 1;
                let commit = if i + 1 == *len { n } else { 0 };
                let f = frame(&h, chain, n % 50 + 1, commit, t as u8);
                chain = h.check_frame(chain, &f).unwrap();
                file.extend(f);
            }
            commits.push(n);
        }
        let chain_at_last_commit = chain;
        for _ in 0..2 {
            n += 1;
            let f = frame(&h, chain, 1, 0, 0);
            chain = h.check_frame(chain, &f).unwrap();
            file.extend(f);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db-wal");
        std::fs::write(&path, &file).unwrap();
        let mut wal = std::fs::File::open(&path).unwrap();

        let mut pieces = Vec::new();
        let mut last_chain = None;
        let whole = read_in_pieces(&mut wal, &h, h.checksum, 1, n, |first, frames, after| {
            let count = (frames.len() / h.frame_size()) as u32;
            let txs = transactions(frames, 512).unwrap();
            pieces.push((first, count, txs.len()));
            // The chain passed on is the one after exactly these frames.
            let (again, c) = read_frames(
                &mut std::fs::File::open(&path).unwrap(),
                &h,
                h.checksum,
                1,
                first + count - 1,
            )
            .unwrap()
            .unwrap();
            assert_eq!(
                again.len() as u32 / h.frame_size() as u32,
                first + count - 1
            );
            assert_eq!(c, after);
            last_chain = Some(after);
            Ok::<(), std::io::Error>(())
        })
        .unwrap();
        assert!(whole);
        let mut next = 1;
        for &(first, count, txs) in &pieces {
            assert_eq!(first, next, "the pieces follow each other");
            assert!(
                commits.contains(&(first + count - 1)),
                "a piece ends at a commit"
            );
            assert!(
                count <= CHUNK_FRAMES || txs == 1,
                "{count} frames in {txs} transactions"
            );
            next = first + count;
        }
        assert_eq!(
            next - 1,
            *commits.last().unwrap(),
            "everything up to the last commit"
        );
        assert_eq!(last_chain, Some(chain_at_last_commit));
        assert!(pieces.len() > 2, "{pieces:?}");
        assert!(
            pieces.iter().any(|p| p.1 > CHUNK_FRAMES),
            "the long transaction whole"
        );
    }
}
