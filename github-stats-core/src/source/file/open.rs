//! Opening an event file: regular files only, gzip detected by its magic, every member read and
//! what follows the last one reported.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::bufread::GzDecoder;

use super::discover::not_regular_error;

/// Opens `path` if it is a regular file (after symbolic links). Anything else is refused before
/// it is opened: opening a FIFO blocks until a writer comes, and a device may never end. The
/// opened file is checked again, in case `path` changed in between.
pub(crate) fn open_regular_file(path: &Path) -> io::Result<File> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular_error());
    }
    let file = File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular_error());
    }
    Ok(file)
}

/// Opens `path` for reading, decompressing gzip (detected by its magic bytes). A file named
/// `.gz` that is not gzip is an error, not text: it is damage (or a wrong name), and reading it
/// as JSON would only report its bytes as bad lines.
pub(crate) fn open_event_file(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic)?;
    let head = io::Cursor::new(magic[..n].to_vec());
    if n == 2 && magic == GZIP_MAGIC {
        // The decompressor reads its input in small pieces: buffer them.
        let compressed = BufReader::with_capacity(1 << 20, head.chain(file));
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            GzipMembers::new(compressed),
        )))
    } else if has_gz_extension(path) {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "named .gz but not gzip (no gzip header)",
        ))
    } else {
        // Callers read plain files in large requests: a buffer would only add a copy.
        Ok(Box::new(head.chain(file)))
    }
}

pub(super) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Every member of a gzip file, one after the other, as one stream (GH Archive's hours are
/// several members; `MultiGzDecoder` reads them too, but cannot say what follows the last).
/// After the last member only the end of the input is whole: zero padding (what a copy tool
/// or a disk can leave; GNU `zcat` skips it silently) is an error naming its length, and
/// anything else is read as a next member, whose bad header is the error. Either error comes
/// only after every byte of the members before it was handed out, so a reader keeps them all.
pub(crate) struct GzipMembers<R: BufRead> {
    member: Option<GzDecoder<R>>,
}

impl<R: BufRead> GzipMembers<R> {
    /// Reads `compressed`, which starts with a gzip header.
    pub(crate) fn new(compressed: R) -> GzipMembers<R> {
        GzipMembers {
            member: Some(GzDecoder::new(compressed)),
        }
    }
}

impl<R: BufRead> Read for GzipMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(member) = self.member.as_mut() else {
                return Ok(0);
            };
            let n = member.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // The member ended with a whole trailer: what follows it?
            let mut input = self
                .member
                .take()
                .expect("a member is being read")
                .into_inner();
            let next = input.fill_buf()?;
            if next.is_empty() {
                return Ok(0);
            }
            if next[0] != 0 {
                self.member = Some(GzDecoder::new(input));
                continue;
            }
            let (zeros, more) = skip_zeros(&mut input)?;
            let message = if more {
                format!(
                    "{zeros} bytes of zero padding, then bytes that are not gzip, after the last \
                     gzip member"
                )
            } else {
                format!("{zeros} bytes of zero padding after the last gzip member")
            };
            return Err(io::Error::new(io::ErrorKind::InvalidData, message));
        }
    }
}

/// Reads past the zero bytes at `input`'s position: how many, and whether another byte follows.
pub(super) fn skip_zeros(input: &mut impl BufRead) -> io::Result<(u64, bool)> {
    let mut zeros = 0u64;
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Ok((zeros, false));
        }
        let run = available.iter().take_while(|&&b| b == 0).count();
        let more = run < available.len();
        input.consume(run);
        zeros += run as u64;
        if more {
            return Ok((zeros, true));
        }
    }
}

pub(super) fn has_gz_extension(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

pub(crate) fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
