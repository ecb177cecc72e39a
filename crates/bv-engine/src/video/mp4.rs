//! Setting a track's display rotation in an MP4/MOV file in place.
//!
//! The FFmpeg 5.1 command line cannot attach a display matrix to an encoded
//! stream, so after encoding, the engine writes the input's rotation into the
//! video track's `tkhd` matrix itself. Only the 36 matrix bytes change.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

fn read_u32(f: &mut (impl Read + Seek)) -> io::Result<u32> {
    let mut b = [0u8; 4];
    f.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

/// Box header at the current position: (size including header, type, header length).
fn box_header(f: &mut (impl Read + Seek), end: u64) -> io::Result<Option<(u64, [u8; 4], u64)>> {
    let pos = f.stream_position()?;
    if pos + 8 > end {
        return Ok(None);
    }
    let size = read_u32(f)? as u64;
    let mut ty = [0u8; 4];
    f.read_exact(&mut ty)?;
    let (size, hdr) = match size {
        1 => {
            let mut b = [0u8; 8];
            f.read_exact(&mut b)?;
            (u64::from_be_bytes(b), 16)
        }
        0 => (end - pos, 8),
        s => (s, 8),
    };
    if size < hdr || pos + size > end {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad MP4 box size",
        ));
    }
    Ok(Some((size, ty, hdr)))
}

/// Children of a container box spanning `[start, end)`: (type, body start, box end).
fn children(
    f: &mut (impl Read + Seek),
    start: u64,
    end: u64,
) -> io::Result<Vec<([u8; 4], u64, u64)>> {
    let mut out = Vec::new();
    f.seek(SeekFrom::Start(start))?;
    while let Some((size, ty, hdr)) = box_header(f, end)? {
        let pos = f.stream_position()? - hdr;
        out.push((ty, pos + hdr, pos + size));
        f.seek(SeekFrom::Start(pos + size))?;
    }
    Ok(out)
}

/// The 3x3 matrix FFmpeg writes for a clockwise rotation tag of `cw` degrees.
fn matrix(cw: i64, w: u32, h: u32) -> [i32; 9] {
    const ONE: i32 = 1 << 16;
    let (w, h) = ((w as i32) << 16, (h as i32) << 16);
    match cw.rem_euclid(360) {
        90 => [0, ONE, 0, -ONE, 0, 0, h, 0, 1 << 30],
        180 => [-ONE, 0, 0, 0, -ONE, 0, w, h, 1 << 30],
        270 => [0, -ONE, 0, ONE, 0, 0, 0, w, 1 << 30],
        _ => [ONE, 0, 0, 0, ONE, 0, 0, 0, 1 << 30],
    }
}

/// Sets the display rotation of every video track in `path`, where
/// `rotation` is in ffprobe's convention (counter-clockwise degrees, so a
/// file tagged "rotate=90" reports -90). Only multiples of 90 are supported.
pub fn set_rotation(path: &Path, rotation: i64) -> io::Result<usize> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let len = f.metadata()?.len();
    let mut patched = 0;
    for (ty, body, end) in children(&mut f, 0, len)? {
        if &ty != b"moov" {
            continue;
        }
        for (ty, body, end) in children(&mut f, body, end)? {
            if &ty != b"trak" {
                continue;
            }
            let kids = children(&mut f, body, end)?;
            let is_video = kids.iter().filter(|k| &k.0 == b"mdia").try_fold(
                false,
                |acc, k| -> io::Result<bool> {
                    let mdia = children(&mut f, k.1, k.2)?;
                    let mut video = acc;
                    for (t, b, _) in mdia {
                        if &t == b"hdlr" {
                            f.seek(SeekFrom::Start(b + 8))?;
                            let mut h = [0u8; 4];
                            f.read_exact(&mut h)?;
                            video |= &h == b"vide";
                        }
                    }
                    Ok(video)
                },
            )?;
            let Some(&(_, tkhd, _)) = kids.iter().find(|k| &k.0 == b"tkhd") else {
                continue;
            };
            if !is_video {
                continue;
            }
            f.seek(SeekFrom::Start(tkhd))?;
            let version = read_u32(&mut f)? >> 24;
            // version/flags, times, track id, reserved, duration, reserved(8), layer, group, volume, reserved
            let matrix_at = tkhd + 4 + if version == 1 { 32 } else { 20 } + 8 + 8;
            f.seek(SeekFrom::Start(matrix_at + 36))?;
            let (w, h) = (read_u32(&mut f)? >> 16, read_u32(&mut f)? >> 16);
            f.seek(SeekFrom::Start(matrix_at))?;
            let m: Vec<u8> = matrix(-rotation, w, h)
                .iter()
                .flat_map(|v| v.to_be_bytes())
                .collect();
            f.write_all(&m)?;
            patched += 1;
        }
    }
    f.flush()?;
    Ok(patched)
}
