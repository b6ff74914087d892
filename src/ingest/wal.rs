//! The write-ahead log: every accepted request is framed, checksummed and (by default) fsynced
//! before it is acknowledged. Appends from many requests are written and synced together
//! (group commit) by one writer thread. Segments are numbered files; the ingester rotates to a
//! new segment when it cuts a block, and removes a segment once no span it holds is only in
//! memory.
//!
//! Record: `u32 LE payload length | u32 LE crc32 of payload | payload`, payload =
//! `u16 LE tenant length | tenant | OTLP ExportTraceServiceRequest protobuf`.
//!
//! Cut marks (`cuts/<segment>-<block-id>`) make replay exact. Before the ingester writes a block, it
//! records the block's trace ids and the segment its cut rotated to: the block holds every span
//! of those traces that segments before it hold (and earlier blocks do not). If the block is
//! committed when the log is replayed, those records are skipped for those traces; if it is
//! not, its leftover objects are deleted. A mark stays until the segments it covers are gone.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use tokio::sync::oneshot;
use uuid::Uuid;

use crate::storage::TraceId;

/// The folder of cut marks, inside the log's folder.
const CUTS_DIR: &str = "cuts";

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the write-ahead log writer has stopped")]
    Stopped,
}

/// Whether appends are fsynced before they are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// fsync before acknowledging (grouped across concurrent requests): survives power loss.
    Always,
    /// Leave syncing to the OS: survives a process crash, not a machine crash.
    Never,
}

enum Command {
    Append(Vec<u8>, oneshot::Sender<Result<u64, WalError>>),
    Rotate(oneshot::Sender<Result<u64, WalError>>),
}

/// A record read back from the log.
pub struct Record {
    /// The segment it was read from.
    pub segment: u64,
    pub tenant: String,
    pub request: Vec<u8>,
}

/// A handle to the log; cheap to share.
pub struct Wal {
    dir: PathBuf,
    commands: mpsc::Sender<Command>,
    /// The segment this process started appending to: every segment of earlier runs is older.
    first_segment: u64,
}

fn segment_name(id: u64) -> String {
    format!("{id:010}.wal")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Segment ids present in `dir`, ascending.
fn segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            name.to_str()?.strip_suffix(".wal")?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

pub fn encode_record(tenant: &str, request: &[u8]) -> Vec<u8> {
    let payload_len = 2 + tenant.len() + request.len();
    let mut record = Vec::with_capacity(8 + payload_len);
    record.extend_from_slice(&(payload_len as u32).to_le_bytes());
    record.extend_from_slice(&[0; 4]); // checksum, once the payload is in place
    record.extend_from_slice(&(tenant.len() as u16).to_le_bytes());
    record.extend_from_slice(tenant.as_bytes());
    record.extend_from_slice(request);
    let crc = crc32fast::hash(&record[8..]);
    record[4..8].copy_from_slice(&crc.to_le_bytes());
    record
}

/// Reads one segment; stops at a torn or corrupt tail (a write that was never acknowledged) and
/// reports how many bytes were dropped.
fn read_segment(path: &Path, segment: u64) -> Result<(Vec<Record>, usize), WalError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io(path))?;
    let mut records = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc || payload.len() < 2 {
            break;
        }
        let tenant_len = u16::from_le_bytes([payload[0], payload[1]]) as usize;
        let Some(tenant) = payload.get(2..2 + tenant_len) else {
            break;
        };
        records.push(Record {
            segment,
            tenant: String::from_utf8_lossy(tenant).into_owned(),
            request: payload[2 + tenant_len..].to_vec(),
        });
        at += 8 + len;
    }
    Ok((records, bytes.len() - at))
}

impl Wal {
    /// Opens the log in `dir`, returning the records of earlier runs (oldest first) to replay.
    /// New appends go to a fresh segment; old segments stay until [`Wal::remove_before`].
    pub fn open(dir: &Path, sync: SyncPolicy) -> Result<(Self, Vec<Record>), WalError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let existing = segments(dir)?;
        let mut replay = Vec::new();
        for id in &existing {
            let path = dir.join(segment_name(*id));
            let (records, dropped) = read_segment(&path, *id)?;
            if dropped > 0 {
                tracing::warn!(
                    segment = %path.display(),
                    dropped_bytes = dropped,
                    "write-ahead log segment ends in an incomplete record (never acknowledged); ignoring it"
                );
            }
            replay.extend(records);
        }
        let first = existing.last().map_or(1, |last| last + 1);
        let (commands, receiver) = mpsc::channel();
        let writer_dir = dir.to_path_buf();
        let file = open_segment(&writer_dir, first)?;
        std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || writer_loop(writer_dir, first, file, receiver, sync))
            .map_err(io(dir))?;
        Ok((
            Self {
                dir: dir.to_path_buf(),
                commands,
                first_segment: first,
            },
            replay,
        ))
    }

    /// The segment this process started appending to.
    pub fn first_segment(&self) -> u64 {
        self.first_segment
    }

    /// Appends one request and returns, once it is durable under the sync policy, the segment
    /// it is in.
    pub async fn append(&self, tenant: &str, request: &[u8]) -> Result<u64, WalError> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(Command::Append(encode_record(tenant, request), done))
            .map_err(|_| WalError::Stopped)?;
        wait.await.map_err(|_| WalError::Stopped)?
    }

    /// Starts a new segment; returns its id. Appends acknowledged before this call are in
    /// older segments, later ones in the new segment or after.
    pub async fn rotate(&self) -> Result<u64, WalError> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(Command::Rotate(done))
            .map_err(|_| WalError::Stopped)?;
        wait.await.map_err(|_| WalError::Stopped)?
    }

    /// Deletes every segment older than `segment`.
    pub fn remove_before(&self, segment: u64) -> Result<(), WalError> {
        for id in segments(&self.dir)? {
            if id < segment {
                let path = self.dir.join(segment_name(id));
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        Ok(())
    }
}

/// What one block cut from the ingester covers; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutMark {
    pub tenant: String,
    pub block_id: Uuid,
    /// The block holds every span of `trace_ids` that segments before this one hold, apart
    /// from spans already in earlier blocks.
    pub before_segment: u64,
    pub trace_ids: Vec<TraceId>,
}

impl CutMark {
    /// `u32 LE crc32 of the rest | u64 LE before_segment | block id (16) | u16 LE tenant length
    /// | tenant | trace ids (16 each)`.
    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(30 + self.tenant.len() + 16 * self.trace_ids.len());
        bytes.extend_from_slice(&[0; 4]);
        bytes.extend_from_slice(&self.before_segment.to_le_bytes());
        bytes.extend_from_slice(self.block_id.as_bytes());
        bytes.extend_from_slice(&(self.tenant.len() as u16).to_le_bytes());
        bytes.extend_from_slice(self.tenant.as_bytes());
        for id in &self.trace_ids {
            bytes.extend_from_slice(id.as_bytes());
        }
        let crc = crc32fast::hash(&bytes[4..]);
        bytes[..4].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let crc = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
        if crc32fast::hash(bytes.get(4..)?) != crc {
            return None;
        }
        let before_segment = u64::from_le_bytes(bytes.get(4..12)?.try_into().ok()?);
        let block_id = Uuid::from_slice(bytes.get(12..28)?).ok()?;
        let tenant_len = u16::from_le_bytes(bytes.get(28..30)?.try_into().ok()?) as usize;
        let tenant = std::str::from_utf8(bytes.get(30..30 + tenant_len)?).ok()?;
        let ids = bytes.get(30 + tenant_len..)?;
        if ids.len() % 16 != 0 {
            return None;
        }
        let trace_ids = ids
            .chunks_exact(16)
            .map(|id| TraceId(id.try_into().expect("16 bytes")))
            .collect();
        Some(Self {
            tenant: tenant.to_string(),
            block_id,
            before_segment,
            trace_ids,
        })
    }
}

impl Wal {
    fn cuts_dir(&self) -> PathBuf {
        self.dir.join(CUTS_DIR)
    }

    /// `cuts/<before_segment>-<block-id>`: the name says which segments a mark covers, so
    /// marks are dropped without reading them.
    fn cut_mark_path(&self, mark: &CutMark) -> PathBuf {
        self.cuts_dir()
            .join(format!("{:010}-{}", mark.before_segment, mark.block_id))
    }

    /// Stores `mark` durably (written aside, synced, renamed into place) before its block is
    /// written.
    pub fn write_cut_mark(&self, mark: &CutMark) -> Result<(), WalError> {
        let dir = self.cuts_dir();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = self.cut_mark_path(mark);
        let aside = path.with_extension("tmp");
        let mut file = File::create(&aside).map_err(io(&aside))?;
        file.write_all(&mark.encode()).map_err(io(&aside))?;
        file.sync_data().map_err(io(&aside))?;
        std::fs::rename(&aside, &path).map_err(io(&path))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&dir))
    }

    /// Every cut mark stored. A mark that cannot be read (never renamed into place, so its
    /// block was never written) is removed.
    pub fn cut_marks(&self) -> Result<Vec<CutMark>, WalError> {
        let dir = self.cuts_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir)(e)),
        };
        let mut marks = Vec::new();
        for entry in entries {
            let path = entry.map_err(io(&dir))?.path();
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            match CutMark::decode(&bytes) {
                Some(mark) if path.extension().is_none() => marks.push(mark),
                _ => {
                    tracing::warn!(path = %path.display(), "removing an incomplete cut mark");
                    std::fs::remove_file(&path).map_err(io(&path))?;
                }
            }
        }
        Ok(marks)
    }

    /// Removes `mark`, if it is stored.
    pub fn remove_cut_mark(&self, mark: &CutMark) -> Result<(), WalError> {
        let path = self.cut_mark_path(mark);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
            _ => Ok(()),
        }
    }

    /// Removes the marks that only cover segments before `segment` (gone, or going).
    pub fn remove_cut_marks_before(&self, segment: u64) -> Result<(), WalError> {
        let dir = self.cuts_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&dir)(e)),
        };
        for entry in entries {
            let path = entry.map_err(io(&dir))?.path();
            let covered = path
                .file_name()
                .and_then(|name| name.to_str()?.split_once('-'))
                .and_then(|(before, _)| before.parse::<u64>().ok());
            if covered.is_some_and(|before| before <= segment) && path.extension().is_none() {
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        Ok(())
    }
}

fn open_segment(dir: &Path, id: u64) -> Result<BufWriter<File>, WalError> {
    let path = dir.join(segment_name(id));
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io(&path))?;
    // Make the new file's directory entry durable too.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(BufWriter::with_capacity(1 << 20, file))
}

fn writer_loop(
    dir: PathBuf,
    mut current: u64,
    mut file: BufWriter<File>,
    commands: mpsc::Receiver<Command>,
    sync: SyncPolicy,
) {
    let path = |id| dir.join(segment_name(id));
    while let Ok(first) = commands.recv() {
        // Everything queued now is written and synced together.
        let mut batch = vec![first];
        batch.extend(commands.try_iter());
        let mut waiting = Vec::new();
        for command in batch {
            match command {
                Command::Append(record, done) => {
                    let written = file.write_all(&record).map_err(io(&path(current)));
                    match written {
                        Ok(()) => waiting.push((done, current)),
                        Err(e) => {
                            let _ = done.send(Err(e));
                        }
                    }
                }
                Command::Rotate(done) => {
                    let flushed = finish(&mut file, sync).map_err(io(&path(current)));
                    let result = flushed.and_then(|()| {
                        let next = open_segment(&dir, current + 1)?;
                        file = next;
                        current += 1;
                        Ok(current)
                    });
                    // Appends before the rotation are durable once the old segment is synced.
                    let ok = result.is_ok();
                    for (w, segment) in waiting.drain(..) {
                        let _ = w.send(if ok {
                            Ok(segment)
                        } else {
                            Err(WalError::Stopped)
                        });
                    }
                    let _ = done.send(result);
                }
            }
        }
        let synced = finish(&mut file, sync);
        for (done, segment) in waiting {
            let _ = done.send(match &synced {
                Ok(()) => Ok(segment),
                Err(e) => Err(WalError::Io {
                    path: path(current),
                    source: std::io::Error::new(e.kind(), e.to_string()),
                }),
            });
        }
    }
    let _ = finish(&mut file, sync);
}

fn finish(file: &mut BufWriter<File>, sync: SyncPolicy) -> std::io::Result<()> {
    file.flush()?;
    if sync == SyncPolicy::Always {
        file.get_ref().sync_data()?;
    }
    Ok(())
}
