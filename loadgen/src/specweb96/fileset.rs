//! Writing and verifying the SPECweb96 file set on disk.
//!
//! Sizes and names come from `workload.rs`; this file owns the content pattern, the writer and
//! the streaming verifier. The pattern is designed so a client can check a body at memcmp speed
//! while it streams in, without reading the file set itself:
//!
//! - A file is a sequence of 4 KiB blocks (the last one short).
//! - The first 64 bytes of every block are a text line naming the block's byte offset, the file
//!   and the file's identity hash, e.g.
//!   `0000000000001000 dir00042/class1_3 h=1d3f5a7c9e0b2d4f` padded with spaces to 63 bytes
//!   and a newline. A wrong file or a wrong offset (a `sendfile` slip of a whole block) fails
//!   at the next block boundary at the latest.
//! - The other 63 lines of a block are printable pseudo-random text from one 4 KiB body that
//!   depends only on the seed, rotated by a whole number of lines chosen by the file's hash, so
//!   files differ in their bodies too.
//!
//! Verifying a block is then one 16-digit hex format plus two slice compares against the
//! precomputed body, and building a verifier for a request costs a 64-byte copy.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use crate::specweb96::{FileId, MAX_DIRS, PATH_LEN};

/// Bytes per block: the pattern repeats, apart from each block's header line, with this period.
const BLOCK: usize = 4096;
/// Bytes per text line, the newline included; also the header line's length.
const LINE: usize = 64;
/// Printable characters of the body text: 64 of them, so 6 random bits pick one.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEX: &[u8; 16] = b"0123456789abcdef";

/// SplitMix64's finalizer: a cheap, well-mixed 64-bit hash.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The identity hash of a file for a seed: its header shows it and it picks the body rotation.
pub fn file_hash(seed: u64, id: FileId) -> u64 {
    let key = (u64::from(id.dir()) << 16) | (u64::from(id.class()) << 8) | u64::from(id.file());
    mix64(seed ^ mix64(key ^ 0x5350_4543_7765_6239))
}

/// Writes `value` as 16 lowercase hex digits.
fn put_hex16(out: &mut [u8], value: u64) {
    for (i, o) in out[..16].iter_mut().enumerate() {
        *o = HEX[((value >> (60 - 4 * i)) & 0xf) as usize];
    }
}

/// The seed-wide part of the content pattern, computed once per seed and shared by all files.
///
/// A worker builds one per run and lends it to the verifiers of its connections, so creating a
/// verifier per request allocates nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentPattern {
    seed: u64,
    /// The 4 KiB body text stored twice in a row, so every rotated window of it is one
    /// contiguous slice and a comparison is a single memcmp.
    body: Box<[u8]>,
}

impl ContentPattern {
    /// Builds the pattern for `seed` (a few microseconds).
    pub fn new(seed: u64) -> ContentPattern {
        let mut body = vec![0u8; 2 * BLOCK];
        let mut state = mix64(seed ^ 0x626f_6479_7465_7874);
        for line in body[..BLOCK].chunks_mut(LINE) {
            for chunk in line[..LINE - 1].chunks_mut(8) {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let r = mix64(state);
                for (i, b) in chunk.iter_mut().enumerate() {
                    *b = ALPHABET[((r >> (8 * i)) & 63) as usize];
                }
            }
            line[LINE - 1] = b'\n';
        }
        body.copy_within(..BLOCK, BLOCK);
        ContentPattern {
            seed,
            body: body.into_boxed_slice(),
        }
    }

    /// The seed this pattern was built for.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The byte at `offset` of file `id`, or `None` past its end. For spot checks and tests;
    /// use a [`ContentVerifier`] for whole bodies.
    pub fn expected_byte(&self, id: FileId, offset: u64) -> Option<u8> {
        if offset >= id.size_bytes() {
            return None;
        }
        let mut expected = Expected::new(self, id);
        let (head, body) = expected.slices(offset, 1);
        Some(head.first().or(body.first()).copied().unwrap_or_default())
    }

    /// A verifier for one response body that should be file `id`.
    pub fn verifier(&self, id: FileId) -> ContentVerifier<'_> {
        ContentVerifier {
            expected: Expected::new(self, id),
            received: 0,
            failure: None,
        }
    }
}

/// The expected bytes of one file, handed out block by block.
#[derive(Clone, Debug)]
struct Expected<'a> {
    /// The doubled body, already offset by this file's rotation: block offset `o >= LINE`
    /// expects `body[o]`.
    body: &'a [u8],
    /// The header line; its first 16 bytes hold the offset of block `header_block`.
    header: [u8; LINE],
    header_block: u64,
    len: u64,
}

impl<'a> Expected<'a> {
    fn new(pattern: &'a ContentPattern, id: FileId) -> Expected<'a> {
        let hash = file_hash(pattern.seed, id);
        let mut header = [b' '; LINE];
        put_hex16(&mut header, 0);
        header[17..17 + PATH_LEN].copy_from_slice(&id.path_bytes());
        let h = 18 + PATH_LEN;
        header[h..h + 2].copy_from_slice(b"h=");
        put_hex16(&mut header[h + 2..], hash);
        header[LINE - 1] = b'\n';
        let rotation = (hash >> 58) as usize * LINE;
        Expected {
            body: &pattern.body[rotation..rotation + BLOCK],
            header,
            header_block: 0,
            len: id.size_bytes(),
        }
    }

    /// The expected bytes from `pos` on: at most `max` bytes, never past the end of the block
    /// or of the file, as a header part and a body part (either may be empty).
    fn slices(&mut self, pos: u64, max: usize) -> (&[u8], &[u8]) {
        debug_assert!(pos < self.len);
        let block = pos / BLOCK as u64;
        let o = (pos % BLOCK as u64) as usize;
        let n = max.min(BLOCK - o).min((self.len - pos) as usize);
        let head_end = (o + n).min(LINE);
        let head: &[u8] = if o < LINE {
            if block != self.header_block {
                put_hex16(&mut self.header, block * BLOCK as u64);
                self.header_block = block;
            }
            &self.header[o..head_end]
        } else {
            &[]
        };
        (head, &self.body[o.max(LINE).min(o + n)..o + n])
    }
}

/// Why a body does not match its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// The first wrong byte.
    Mismatch {
        /// Its offset in the body.
        offset: u64,
        /// What the file has there.
        expected: u8,
        /// What came instead.
        found: u8,
    },
    /// The body ended early.
    Short {
        /// The file's size.
        expected_bytes: u64,
        /// The bytes that came.
        received_bytes: u64,
    },
    /// The body went on past the file's size.
    Long {
        /// The file's size.
        expected_bytes: u64,
        /// All the bytes that came, including those fed after the excess was noticed.
        received_bytes: u64,
    },
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::Mismatch {
                offset,
                expected,
                found,
            } => write!(
                f,
                "wrong byte at offset {offset}: expected {:?}, got {:?}",
                char::from(*expected),
                char::from(*found)
            ),
            VerifyError::Short {
                expected_bytes,
                received_bytes,
            } => {
                write!(f, "short body: {received_bytes} of {expected_bytes} bytes")
            }
            VerifyError::Long {
                expected_bytes,
                received_bytes,
            } => {
                write!(
                    f,
                    "body too long: {received_bytes} bytes, expected {expected_bytes}"
                )
            }
        }
    }
}

impl std::error::Error for VerifyError {}

/// Checks one response body against its file incrementally, chunk by chunk as it arrives.
///
/// Borrowing the [`ContentPattern`] keeps the verifier small (about 100 bytes) and free to
/// create; a worker owns the pattern for the whole run, so its connections can hold verifiers.
#[derive(Clone, Debug)]
pub struct ContentVerifier<'a> {
    expected: Expected<'a>,
    received: u64,
    /// The first failure; once set, later chunks are only counted.
    failure: Option<VerifyError>,
}

impl ContentVerifier<'_> {
    /// Checks the next chunk of the body. Returns `false` once the body is known to be wrong
    /// (a wrong byte, or more bytes than the file has), so a caller may stop reading early;
    /// call [`ContentVerifier::finish`] for the reason.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        let mut pos = self.received;
        self.received += chunk.len() as u64;
        if self.failure.is_some() {
            return false;
        }
        let len = self.expected.len;
        let mut rest = chunk;
        while !rest.is_empty() {
            if pos >= len {
                self.failure = Some(VerifyError::Long {
                    expected_bytes: len,
                    received_bytes: self.received,
                });
                return false;
            }
            let (head, body) = self.expected.slices(pos, rest.len());
            let n = head.len() + body.len();
            let (now, later) = rest.split_at(n);
            if now[..head.len()] != *head || now[head.len()..] != *body {
                let expected = head.iter().chain(body);
                let (i, (e, f)) = expected
                    .zip(now)
                    .enumerate()
                    .find(|(_, (e, f))| e != f)
                    .expect("slices differ somewhere");
                self.failure = Some(VerifyError::Mismatch {
                    offset: pos + i as u64,
                    expected: *e,
                    found: *f,
                });
                return false;
            }
            pos += n as u64;
            rest = later;
        }
        true
    }

    /// The verdict once the body has ended: every byte right and the length exact.
    pub fn finish(&self) -> Result<(), VerifyError> {
        match &self.failure {
            // A too-long body may have grown since it was first noticed.
            Some(VerifyError::Long { expected_bytes, .. }) => Err(VerifyError::Long {
                expected_bytes: *expected_bytes,
                received_bytes: self.received,
            }),
            Some(failure) => Err(failure.clone()),
            None if self.received < self.expected.len => Err(VerifyError::Short {
                expected_bytes: self.expected.len,
                received_bytes: self.received,
            }),
            None => Ok(()),
        }
    }

    /// Bytes fed so far.
    pub fn received_bytes(&self) -> u64 {
        self.received
    }

    /// The size the body must have.
    pub fn expected_bytes(&self) -> u64 {
        self.expected.len
    }
}

/// What [`write_fileset`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilesetSummary {
    /// Directories in the file set.
    pub dirs: u32,
    /// Files in the file set (36 per directory).
    pub files: u64,
    /// Bytes in the file set.
    pub total_bytes: u64,
    /// Files written by this call.
    pub files_written: u64,
    /// Files already up to date and left alone.
    pub files_skipped: u64,
}

/// Writes directories `dir00000` .. of the SPECweb96 file set under `root`, with the content
/// pattern of `seed`.
///
/// Idempotent and cheap to repeat: a file that already has the right size and the right first
/// line (which carries the seed's file hash) is left alone, so only the first 64 bytes of each
/// existing file are read; a file damaged further in is not noticed (a client's
/// [`ContentVerifier`] will). Each file is written under a temporary dotfile name and renamed,
/// so an interrupted run never leaves a short file under a real name, and several processes
/// may write one file set at once. Directories beyond `dirs` from
/// an earlier, larger run are left in place; they are never requested.
pub fn write_fileset(root: &Path, dirs: u32, seed: u64) -> io::Result<FilesetSummary> {
    if dirs == 0 || dirs > MAX_DIRS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("directory count must be between 1 and {MAX_DIRS}, got {dirs}"),
        ));
    }
    let pattern = ContentPattern::new(seed);
    // 64 KiB: a multiple of BLOCK, large enough that writes cost little per byte.
    let mut buf = vec![0u8; 16 * BLOCK];
    let mut summary = FilesetSummary {
        dirs,
        files: 0,
        total_bytes: 0,
        files_written: 0,
        files_skipped: 0,
    };
    for dir in 0..dirs {
        let mut dir_created = false;
        for id in FileId::all_in_dir(dir) {
            let path = root.join(id.to_string());
            summary.files += 1;
            summary.total_bytes += id.size_bytes();
            if is_up_to_date(&path, &pattern, id)? {
                summary.files_skipped += 1;
                continue;
            }
            if !dir_created {
                let parent = path.parent().expect("a file path has a directory");
                fs::create_dir_all(parent).map_err(|e| with_path(e, parent))?;
                dir_created = true;
            }
            write_file(&path, &pattern, id, &mut buf).map_err(|e| with_path(e, &path))?;
            summary.files_written += 1;
        }
    }
    Ok(summary)
}

/// Adds the path to an I/O error, which otherwise says only "No such file or directory".
fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Whether `path` already holds file `id`: right size and right first line.
fn is_up_to_date(path: &Path, pattern: &ContentPattern, id: FileId) -> io::Result<bool> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(with_path(e, path)),
    };
    if file.metadata().map_err(|e| with_path(e, path))?.len() != id.size_bytes() {
        return Ok(false);
    }
    let mut first = [0u8; LINE];
    let n = (LINE as u64).min(id.size_bytes()) as usize;
    if file.read_exact(&mut first[..n]).is_err() {
        return Ok(false);
    }
    let mut verifier = pattern.verifier(id);
    Ok(verifier.feed(&first[..n]))
}

/// Writes file `id` to `path` via a temporary file in the same directory, named with a leading
/// dot: a server loading the directory meanwhile (the parts of a sharded run on one machine
/// share a file set) skips dotfiles, so it never opens a temporary file another writer is
/// about to rename.
fn write_file(path: &Path, pattern: &ContentPattern, id: FileId, buf: &mut [u8]) -> io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let mut file = File::create(&tmp)?;
    let mut expected = Expected::new(pattern, id);
    let len = id.size_bytes();
    let mut pos = 0u64;
    while pos < len {
        // Fill the buffer block by block, then write it in one call.
        let mut filled = 0;
        while filled < buf.len() && pos < len {
            let (head, body) = expected.slices(pos, buf.len() - filled);
            buf[filled..filled + head.len()].copy_from_slice(head);
            filled += head.len();
            buf[filled..filled + body.len()].copy_from_slice(body);
            filled += body.len();
            pos += (head.len() + body.len()) as u64;
        }
        file.write_all(&buf[..filled])?;
    }
    drop(file);
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::specweb96::{DIR_BYTES, FILES_PER_DIR};

    fn id(dir: u32, class: u8, file: u8) -> FileId {
        FileId::new(dir, class, file).unwrap()
    }

    fn read_all(root: &Path, dirs: u32) -> Vec<(FileId, Vec<u8>)> {
        (0..dirs)
            .flat_map(FileId::all_in_dir)
            .map(|id| (id, fs::read(root.join(id.to_string())).unwrap()))
            .collect()
    }

    /// Feeds `body` in chunks of the given sizes (cycled) and returns the verdict.
    fn verify_in_chunks(
        pattern: &ContentPattern,
        id: FileId,
        body: &[u8],
        sizes: &[usize],
    ) -> Result<(), VerifyError> {
        let mut v = pattern.verifier(id);
        let mut rest = body;
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, later) = rest.split_at((*size).min(rest.len()));
            v.feed(chunk);
            rest = later;
        }
        v.finish()
    }

    #[test]
    fn writes_are_deterministic_and_sizes_exact() {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let summary = write_fileset(a.path(), 2, 7).unwrap();
        assert_eq!(
            summary,
            FilesetSummary {
                dirs: 2,
                files: 72,
                total_bytes: 2 * DIR_BYTES,
                files_written: 72,
                files_skipped: 0
            }
        );
        write_fileset(b.path(), 2, 7).unwrap();
        write_fileset(c.path(), 2, 8).unwrap();
        let (fa, fb, fc) = (
            read_all(a.path(), 2),
            read_all(b.path(), 2),
            read_all(c.path(), 2),
        );
        assert_eq!(fa, fb, "same seed, different bytes");
        for ((id, bytes), (_, other_seed)) in fa.iter().zip(&fc) {
            assert_eq!(bytes.len() as u64, id.size_bytes(), "{id}");
            assert_ne!(
                bytes, other_seed,
                "{id}: seeds 7 and 8 wrote the same bytes"
            );
        }
        // No other files: no leftovers of the temporary names.
        let names: Vec<_> = fs::read_dir(a.path().join("dir00001")).unwrap().collect();
        assert_eq!(names.len(), FILES_PER_DIR);
        assert_eq!(fs::read_dir(a.path()).unwrap().count(), 2);
    }

    #[test]
    fn content_is_readable_and_files_differ() {
        let dir = tempfile::tempdir().unwrap();
        write_fileset(dir.path(), 2, 7).unwrap();
        let big = fs::read(dir.path().join("dir00001/class2_1")).unwrap();
        let first = std::str::from_utf8(&big[..LINE]).unwrap();
        let hash = format!("h={:016x}", file_hash(7, id(1, 2, 0)));
        assert_eq!(
            first,
            format!("0000000000000000 dir00001/class2_1 {hash:<28}\n")
        );
        assert!(big[BLOCK..].starts_with(b"0000000000001000 dir00001/class2_1 h="));
        assert!(big
            .iter()
            .all(|b| b.is_ascii_graphic() || *b == b' ' || *b == b'\n'));
        assert!(big.chunks(LINE).all(|line| line.ends_with(b"\n")));
        // The same class and file in another directory differs in its header and its body.
        let other = fs::read(dir.path().join("dir00000/class2_1")).unwrap();
        let differing = big.iter().zip(&other).filter(|(a, b)| a != b).count();
        assert!(differing > big.len() / 2, "only {differing} bytes differ");
    }

    #[test]
    fn repeated_writes_skip_up_to_date_files() {
        let dir = tempfile::tempdir().unwrap();
        write_fileset(dir.path(), 1, 7).unwrap();
        let again = write_fileset(dir.path(), 1, 7).unwrap();
        assert_eq!((again.files_written, again.files_skipped), (0, 36));

        // A short file, a file with a damaged first line and a missing file are rewritten.
        let short = dir.path().join("dir00000/class3_9");
        let damaged = dir.path().join("dir00000/class0_1");
        let before = fs::read(&damaged).unwrap();
        fs::write(&short, b"x").unwrap();
        let mut bytes = before.clone();
        bytes[20] ^= 1;
        fs::write(&damaged, bytes).unwrap();
        fs::remove_file(dir.path().join("dir00000/class1_5")).unwrap();
        let repaired = write_fileset(dir.path(), 1, 7).unwrap();
        assert_eq!((repaired.files_written, repaired.files_skipped), (3, 33));
        assert_eq!(fs::read(&damaged).unwrap(), before);
        assert_eq!(fs::metadata(&short).unwrap().len(), 921_600);

        // Another seed rewrites everything.
        let reseeded = write_fileset(dir.path(), 1, 8).unwrap();
        assert_eq!((reseeded.files_written, reseeded.files_skipped), (36, 0));
    }

    #[test]
    fn zero_or_too_many_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_fileset(dir.path(), 0, 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(write_fileset(dir.path(), MAX_DIRS + 1, 1).is_err());
    }

    #[test]
    fn verifier_accepts_every_real_file_in_any_chunking() {
        let dir = tempfile::tempdir().unwrap();
        write_fileset(dir.path(), 1, 42).unwrap();
        let pattern = ContentPattern::new(42);
        for (id, body) in read_all(dir.path(), 1) {
            for sizes in [
                &[usize::MAX][..],
                &[1],
                &[63, 1, 4097, 8192],
                &[4096],
                &[1000, 7],
            ] {
                assert_eq!(
                    verify_in_chunks(&pattern, id, &body, sizes),
                    Ok(()),
                    "{id} {sizes:?}"
                );
            }
            let mut v = pattern.verifier(id);
            assert!(v.feed(&body));
            assert_eq!(
                (v.received_bytes(), v.expected_bytes()),
                (id.size_bytes(), id.size_bytes())
            );
        }
    }

    #[test]
    fn verifier_rejects_a_flipped_byte_anywhere() {
        let dir = tempfile::tempdir().unwrap();
        write_fileset(dir.path(), 1, 42).unwrap();
        let pattern = ContentPattern::new(42);
        let id = id(0, 3, 1);
        let body = fs::read(dir.path().join(id.to_string())).unwrap();
        let last = body.len() - 1;
        // Header line, body text, the second block's offset digits, the last byte.
        for offset in [0, 17, 63, 64, 1000, 4096 + 3, 150_000, last] {
            let mut bad = body.clone();
            bad[offset] ^= 0x20;
            let err = verify_in_chunks(&pattern, id, &bad, &[1500]).unwrap_err();
            assert_eq!(
                err,
                VerifyError::Mismatch {
                    offset: offset as u64,
                    expected: body[offset],
                    found: bad[offset]
                }
            );
        }
    }

    #[test]
    fn verifier_rejects_short_long_and_wrong_bodies() {
        let pattern = ContentPattern::new(5);
        let id = id(3, 1, 4);
        let body: Vec<u8> = (0..id.size_bytes())
            .map(|o| pattern.expected_byte(id, o).unwrap())
            .collect();
        assert_eq!(verify_in_chunks(&pattern, id, &body, &[777]), Ok(()));

        let err = verify_in_chunks(&pattern, id, &body[..body.len() - 1], &[777]).unwrap_err();
        assert_eq!(
            err,
            VerifyError::Short {
                expected_bytes: 5120,
                received_bytes: 5119
            }
        );
        assert_eq!(err.to_string(), "short body: 5119 of 5120 bytes");

        let mut v = pattern.verifier(id);
        assert!(v.feed(&body));
        assert!(!v.feed(b"ab"));
        assert!(!v.feed(b"c"));
        assert_eq!(
            v.finish(),
            Err(VerifyError::Long {
                expected_bytes: 5120,
                received_bytes: 5123
            })
        );

        assert_eq!(
            verify_in_chunks(&pattern, id, b"", &[1]),
            Err(VerifyError::Short {
                expected_bytes: 5120,
                received_bytes: 0
            })
        );
        // Another file of the same size, or the same file shifted by one block, is refused.
        let other = FileId::new(4, 1, 4).unwrap();
        let other_body: Vec<u8> = (0..other.size_bytes())
            .map(|o| pattern.expected_byte(other, o).unwrap())
            .collect();
        assert!(matches!(
            verify_in_chunks(&pattern, id, &other_body, &[4096]),
            Err(VerifyError::Mismatch {
                offset: 17..=34,
                ..
            })
        ));
        let big = FileId::new(0, 2, 3).unwrap();
        let big_body: Vec<u8> = (0..big.size_bytes())
            .map(|o| pattern.expected_byte(big, o).unwrap())
            .collect();
        let mut shifted = big_body[BLOCK..].to_vec();
        shifted.extend_from_slice(&big_body[..BLOCK]);
        assert!(matches!(
            verify_in_chunks(&pattern, big, &shifted, &[65536]),
            Err(VerifyError::Mismatch { offset: 0..=15, .. })
        ));
        // The wrong seed is refused too.
        let other_seed = ContentPattern::new(6);
        assert!(verify_in_chunks(&other_seed, id, &body, &[4096]).is_err());
    }

    #[test]
    fn expected_byte_matches_the_file_and_ends_with_it() {
        let dir = tempfile::tempdir().unwrap();
        write_fileset(dir.path(), 1, 9).unwrap();
        let pattern = ContentPattern::new(9);
        assert_eq!(pattern.seed(), 9);
        assert_eq!(pattern, ContentPattern::new(9));
        assert_ne!(pattern, ContentPattern::new(10));
        for (id, body) in read_all(dir.path(), 1) {
            for (o, b) in body.iter().enumerate().step_by(97) {
                assert_eq!(pattern.expected_byte(id, o as u64), Some(*b), "{id} at {o}");
            }
            assert_eq!(pattern.expected_byte(id, id.size_bytes()), None);
        }
    }

    /// Throughput of the verifier; run with
    /// `cargo test --release -p loadgen -- --ignored --nocapture verifier_throughput`.
    #[test]
    #[ignore = "timing; run by hand in release mode"]
    fn verifier_throughput() {
        let pattern = ContentPattern::new(1);
        let id = id(0, 3, 8);
        let body: Vec<u8> = (0..id.size_bytes())
            .map(|o| pattern.expected_byte(id, o).unwrap())
            .collect();
        let rounds = 2000;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            let mut v = pattern.verifier(id);
            for chunk in body.chunks(16 * 1024) {
                v.feed(chunk);
            }
            assert_eq!(v.finish(), Ok(()));
        }
        let secs = start.elapsed().as_secs_f64();
        let gb_per_s = (rounds as f64 * body.len() as f64) / secs / 1e9;
        println!(
            "verifier: {gb_per_s:.2} GB/s over {rounds} x {} bytes",
            body.len()
        );
    }
}
