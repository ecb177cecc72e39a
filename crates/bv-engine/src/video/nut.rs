//! Minimal NUT container reader and writer for one raw video stream.
//!
//! FFmpeg hands decoded frames to the engine and takes them back through
//! pipes. Raw `rawvideo` pipes carry no timestamps, which would lose variable
//! frame rates; NUT (FFmpeg's native container, spec: `docs/nut.txt` of the NUT
//! project, version 3) carries an exact pts per frame in the stream's own
//! time base. Only what one raw video stream needs is implemented: the reader
//! accepts what FFmpeg's muxer writes, the writer writes a syncpoint and a
//! checksummed frame header per frame.

use std::io::{self, BufRead, Write};

const FILE_ID: &[u8] = b"nut/multimedia container\0";
const MAIN_STARTCODE: u64 = 0x7A56_1F5F_04AD + ((((b'N' as u64) << 8) + b'M' as u64) << 48);
const STREAM_STARTCODE: u64 = 0x1140_5BF2_F9DB + ((((b'N' as u64) << 8) + b'S' as u64) << 48);
const SYNCPOINT_STARTCODE: u64 = 0xE4AD_EECA_4569 + ((((b'N' as u64) << 8) + b'K' as u64) << 48);

const FLAG_KEY: u64 = 1;
const FLAG_CODED_PTS: u64 = 8;
const FLAG_STREAM_ID: u64 = 16;
const FLAG_SIZE_MSB: u64 = 32;
const FLAG_CHECKSUM: u64 = 64;
const FLAG_RESERVED: u64 = 128;
const FLAG_SM_DATA: u64 = 256;
const FLAG_HEADER_IDX: u64 = 1024;
const FLAG_MATCH_TIME: u64 = 2048;
const FLAG_CODED: u64 = 4096;
const FLAG_INVALID: u64 = 8192;

/// `msb_pts_shift` the writer declares.
const MSB_PTS_SHIFT: u32 = 7;
/// Largest frame accepted from a reader (guards allocations on a hostile stream).
const MAX_FRAME: u64 = 1 << 31;

/// CRC-32 with polynomial 0x04C11DB7, MSB first, initial value 0, no final xor.
fn crc32(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc ^= (b as u32) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn put_v(out: &mut Vec<u8>, v: u64) {
    let mut n = 1;
    while n < 10 && v >> (7 * n) != 0 {
        n += 1;
    }
    for i in (0..n).rev() {
        let byte = ((v >> (7 * i)) & 0x7f) as u8;
        out.push(if i > 0 { byte | 0x80 } else { byte });
    }
}

fn put_s(out: &mut Vec<u8>, v: i64) {
    put_v(
        out,
        if v > 0 {
            (2 * v - 1) as u64
        } else {
            (-2 * v) as u64
        },
    );
}

fn put_vb(out: &mut Vec<u8>, b: &[u8]) {
    put_v(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// What a raw video stream is: pixel format tag, size, time base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// FourCC of the raw pixel format as FFmpeg tags it (e.g. `RGB\x18` for rgb24).
    pub fourcc: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Time base numerator.
    pub tb_num: u64,
    /// Time base denominator.
    pub tb_den: u64,
}

/// One frame: presentation timestamp (in the stream's time base) and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NutFrame {
    /// Presentation timestamp.
    pub pts: i64,
    /// Raw payload.
    pub data: Vec<u8>,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("NUT: {}", msg.into()))
}

/// Writes a NUT stream with a single raw video stream.
pub struct NutWriter<W: Write> {
    w: W,
    pos: u64,
    last_sync: Option<u64>,
}

impl<W: Write> NutWriter<W> {
    /// Writes the file id, main header and stream header.
    pub fn new(mut w: W, s: &StreamInfo) -> io::Result<Self> {
        let g = gcd(s.tb_num, s.tb_den).max(1);
        let (num, den) = (s.tb_num / g, s.tb_den / g);
        w.write_all(FILE_ID)?;
        let mut this = Self {
            w,
            pos: FILE_ID.len() as u64,
            last_sync: None,
        };

        let mut m = Vec::new();
        put_v(&mut m, 3); // version
        put_v(&mut m, 1); // stream_count
        put_v(&mut m, 65536); // max_distance
        put_v(&mut m, 1); // time_base_count
        put_v(&mut m, num);
        put_v(&mut m, den);
        // Frame code 0 invalid; 1..=255 (but 'N'): keyframe, coded pts, size, checksum.
        for (flags, count) in [
            (FLAG_INVALID, 1u64),
            (
                FLAG_KEY | FLAG_CODED_PTS | FLAG_SIZE_MSB | FLAG_CHECKSUM,
                254,
            ),
        ] {
            put_v(&mut m, flags);
            put_v(&mut m, 6); // fields: pts, mul, stream, size, reserved, count
            put_s(&mut m, 0);
            put_v(&mut m, 1);
            put_v(&mut m, 0);
            put_v(&mut m, 0);
            put_v(&mut m, 0);
            put_v(&mut m, count);
        }
        put_v(&mut m, 0); // header_count_minus1: no elision headers
        this.packet(MAIN_STARTCODE, &m)?;

        let mut h = Vec::new();
        put_v(&mut h, 0); // stream_id
        put_v(&mut h, 0); // class: video
        put_vb(&mut h, &s.fourcc);
        put_v(&mut h, 0); // time_base_id
        put_v(&mut h, MSB_PTS_SHIFT as u64);
        put_v(&mut h, 1 << 16); // max_pts_distance (every frame is checksummed anyway)
        put_v(&mut h, 0); // decode_delay
        put_v(&mut h, 0); // stream_flags
        put_vb(&mut h, &[]); // codec_specific_data
        put_v(&mut h, s.width as u64);
        put_v(&mut h, s.height as u64);
        put_v(&mut h, 0); // sample aspect unknown
        put_v(&mut h, 0);
        put_v(&mut h, 0); // colorspace_type unknown
        this.packet(STREAM_STARTCODE, &h)?;
        Ok(this)
    }

    fn packet(&mut self, startcode: u64, payload: &[u8]) -> io::Result<()> {
        let mut head = startcode.to_be_bytes().to_vec();
        let forward = payload.len() as u64 + 4;
        put_v(&mut head, forward);
        if forward > 4096 {
            let c = crc32(0, &head);
            head.extend(c.to_be_bytes());
        }
        let crc = crc32(0, payload);
        self.w.write_all(&head)?;
        self.w.write_all(payload)?;
        self.w.write_all(&crc.to_be_bytes())?;
        self.pos += (head.len() + payload.len() + 4) as u64;
        Ok(())
    }

    /// Writes one keyframe. Timestamps must not decrease and must be >= 0.
    pub fn write_frame(&mut self, pts: i64, data: &[u8]) -> io::Result<()> {
        let pts = u64::try_from(pts).map_err(|_| bad("negative timestamp"))?;
        let sync_pos = self.pos;
        let mut sp = Vec::new();
        put_v(&mut sp, pts); // global_key_pts (one time base: id 0)
        put_v(&mut sp, self.last_sync.map_or(0, |l| (sync_pos - l) / 16));
        self.packet(SYNCPOINT_STARTCODE, &sp)?;
        self.last_sync = Some(sync_pos);

        let mut fh = vec![1u8]; // frame code 1
        put_v(&mut fh, pts + (1 << MSB_PTS_SHIFT));
        put_v(&mut fh, data.len() as u64);
        let crc = crc32(0, &fh);
        fh.extend(crc.to_be_bytes());
        self.w.write_all(&fh)?;
        self.w.write_all(data)?;
        self.pos += (fh.len() + data.len()) as u64;
        Ok(())
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct FrameCode {
    flags: u64,
    stream: u64,
    mul: u64,
    lsb: u64,
    pts_delta: i64,
    reserved: u64,
    header_idx: u64,
}

/// Reads the frames of stream 0 from a NUT stream written by FFmpeg.
pub struct NutReader<R: BufRead> {
    r: R,
    codes: [FrameCode; 256],
    time_bases: Vec<(u64, u64)>,
    stream_tb: usize,
    msb_shift: u32,
    last_pts: i64,
    info: StreamInfo,
    header_lens: Vec<u64>,
}

impl<R: BufRead> NutReader<R> {
    /// Reads the headers up to the first frame.
    pub fn new(mut r: R) -> io::Result<Self> {
        let mut id = [0u8; 25];
        r.read_exact(&mut id)?;
        if id != FILE_ID {
            return Err(bad("missing file id"));
        }
        let mut this = Self {
            r,
            codes: [FrameCode::default(); 256],
            time_bases: Vec::new(),
            stream_tb: 0,
            msb_shift: 0,
            last_pts: 0,
            info: StreamInfo {
                fourcc: Vec::new(),
                width: 0,
                height: 0,
                tb_num: 1,
                tb_den: 1,
            },
            header_lens: vec![0],
        };
        let mut got_stream = false;
        while this.peek()? == Some(b'N') {
            let code = this.u64be()?;
            let payload = this.packet_payload()?;
            match code {
                MAIN_STARTCODE => this.main_header(&payload)?,
                STREAM_STARTCODE => {
                    let mut p = Cursor(&payload, 0);
                    if p.v()? == 0 {
                        this.stream_header(&mut p)?;
                        got_stream = true;
                    }
                }
                SYNCPOINT_STARTCODE => {
                    this.syncpoint(&payload)?;
                    break;
                }
                _ => {} // info, index and unknown packets
            }
        }
        if !got_stream || this.time_bases.is_empty() {
            return Err(bad("no video stream header"));
        }
        Ok(this)
    }

    /// The stream's description.
    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(self.r.fill_buf()?.first().copied())
    }

    fn u8(&mut self) -> io::Result<u8> {
        let mut b = [0u8; 1];
        self.r.read_exact(&mut b)?;
        Ok(b[0])
    }

    fn u64be(&mut self) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.r.read_exact(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }

    fn v(&mut self) -> io::Result<u64> {
        let mut v = 0u64;
        for _ in 0..10 {
            let b = self.u8()?;
            v = (v << 7) | (b & 0x7f) as u64;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("overlong number"))
    }

    /// Reads forward_ptr (and header checksum) and returns the payload without its checksum.
    fn packet_payload(&mut self) -> io::Result<Vec<u8>> {
        let forward = self.v()?;
        if forward > 4096 {
            let mut c = [0u8; 4];
            self.r.read_exact(&mut c)?;
        }
        if !(4..=1 << 24).contains(&forward) {
            return Err(bad("implausible packet size"));
        }
        let mut buf = vec![0u8; forward as usize];
        self.r.read_exact(&mut buf)?;
        buf.truncate(buf.len() - 4);
        Ok(buf)
    }

    fn main_header(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut p = Cursor(payload, 0);
        let version = p.v()?;
        if !(3..=4).contains(&version) {
            return Err(bad(format!("unsupported version {version}")));
        }
        if version > 3 {
            p.v()?; // minor version
        }
        let streams = p.v()?;
        if streams == 0 || streams > 256 {
            return Err(bad("bad stream count"));
        }
        p.v()?; // max_distance
        let n_tb = p.v()?;
        if n_tb == 0 || n_tb > 256 {
            return Err(bad("bad time base count"));
        }
        self.time_bases = (0..n_tb)
            .map(|_| Ok((p.v()?, p.v()?)))
            .collect::<io::Result<_>>()?;
        if self.time_bases.iter().any(|(n, d)| *n == 0 || *d == 0) {
            return Err(bad("zero time base"));
        }
        let (mut pts, mut mul, mut stream, mut head) = (0i64, 1u64, 0u64, 0u64);
        let mut i = 0usize;
        while i < 256 {
            let flags = p.v()?;
            let fields = p.v()?;
            if fields > 0 {
                pts = p.s()?;
            }
            if fields > 1 {
                mul = p.v()?;
            }
            if fields > 2 {
                stream = p.v()?;
            }
            let size = if fields > 3 { p.v()? } else { 0 };
            let res = if fields > 4 { p.v()? } else { 0 };
            let count = if fields > 5 {
                p.v()?
            } else {
                mul.checked_sub(size).ok_or_else(|| bad("bad count"))?
            };
            if fields > 6 {
                p.s()?;
            }
            if fields > 7 {
                head = p.v()?;
            }
            for _ in 8..fields {
                p.v()?;
            }
            if count == 0 || count as usize > 256 - i {
                return Err(bad("bad frame code count"));
            }
            let mut j = 0;
            while j < count && i < 256 {
                if i == b'N' as usize {
                    self.codes[i].flags = FLAG_INVALID;
                    i += 1;
                    continue;
                }
                self.codes[i] = FrameCode {
                    flags,
                    stream,
                    mul,
                    lsb: size + j,
                    pts_delta: pts,
                    reserved: res,
                    header_idx: head,
                };
                i += 1;
                j += 1;
            }
        }
        if p.remaining() > 0 {
            let n = p.v()? + 1;
            self.header_lens = vec![0];
            for _ in 1..n {
                let len = p.v()?;
                p.skip(len)?;
                self.header_lens.push(len);
            }
        }
        Ok(())
    }

    fn stream_header(&mut self, p: &mut Cursor) -> io::Result<()> {
        if p.v()? != 0 {
            return Err(bad("stream 0 is not video"));
        }
        let len = p.v()?;
        let fourcc = p.bytes(len)?;
        let tb = p.v()? as usize;
        if tb >= self.time_bases.len() {
            return Err(bad("bad time base id"));
        }
        self.msb_shift = p.v()? as u32;
        if self.msb_shift >= 16 {
            return Err(bad("bad msb_pts_shift"));
        }
        p.v()?; // max_pts_distance
        p.v()?; // decode_delay
        p.v()?; // flags
        let extra = p.v()?;
        p.skip(extra)?;
        let width = p.v()?;
        let height = p.v()?;
        if width == 0 || height == 0 || width > 1 << 16 || height > 1 << 16 {
            return Err(bad("bad frame size"));
        }
        self.stream_tb = tb;
        let (tb_num, tb_den) = self.time_bases[tb];
        self.info = StreamInfo {
            fourcc,
            width: width as u32,
            height: height as u32,
            tb_num,
            tb_den,
        };
        Ok(())
    }

    fn syncpoint(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut p = Cursor(payload, 0);
        let t = p.v()?;
        let n = self.time_bases.len() as u64;
        let (id, value) = ((t % n) as usize, (t / n) as u128);
        let (fnum, fden) = self.time_bases[id];
        let (tnum, tden) = self.time_bases[self.stream_tb];
        // value * from_tb / to_tb, exactly (truncating as the spec's convert_ts).
        self.last_pts =
            (value * fnum as u128 * tden as u128 / (fden as u128 * tnum as u128)) as i64;
        Ok(())
    }

    /// The next frame of stream 0, or `None` at the end.
    pub fn next_frame(&mut self) -> io::Result<Option<NutFrame>> {
        loop {
            let Some(b) = self.peek()? else {
                return Ok(None);
            };
            if b == b'N' {
                let code = self.u64be()?;
                let payload = self.packet_payload()?;
                if code == SYNCPOINT_STARTCODE {
                    self.syncpoint(&payload)?;
                }
                continue;
            }
            let code = self.u8()?;
            let fc = self.codes[code as usize];
            let mut flags = fc.flags;
            if flags & FLAG_INVALID != 0 {
                return Err(bad(format!("invalid frame code {code}")));
            }
            if flags & FLAG_CODED != 0 {
                flags ^= self.v()?;
            }
            let stream = if flags & FLAG_STREAM_ID != 0 {
                self.v()?
            } else {
                fc.stream
            };
            let pts = if flags & FLAG_CODED_PTS != 0 {
                let coded = self.v()?;
                if coded < 1 << self.msb_shift {
                    let mask = (1i64 << self.msb_shift) - 1;
                    let delta = self.last_pts - mask / 2;
                    ((coded as i64 - delta) & mask) + delta
                } else {
                    (coded - (1 << self.msb_shift)) as i64
                }
            } else {
                self.last_pts + fc.pts_delta
            };
            let mut size = fc.lsb;
            if flags & FLAG_SIZE_MSB != 0 {
                size += fc.mul * self.v()?;
            }
            if flags & FLAG_MATCH_TIME != 0 {
                self.v()?;
            }
            let mut header_idx = fc.header_idx;
            if flags & FLAG_HEADER_IDX != 0 {
                header_idx = self.v()?;
            }
            let reserved = if flags & FLAG_RESERVED != 0 {
                self.v()?
            } else {
                fc.reserved
            };
            for _ in 0..reserved {
                self.v()?;
            }
            if flags & FLAG_CHECKSUM != 0 {
                let mut c = [0u8; 4];
                self.r.read_exact(&mut c)?;
            }
            if flags & FLAG_SM_DATA != 0 {
                return Err(bad("side data in frames is not supported"));
            }
            let elided = if size > 4096 {
                0
            } else {
                *self
                    .header_lens
                    .get(header_idx as usize)
                    .ok_or_else(|| bad("bad header index"))?
            };
            if elided != 0 {
                return Err(bad("elision headers are not supported"));
            }
            if size > MAX_FRAME {
                return Err(bad("frame too large"));
            }
            let mut data = vec![0u8; size as usize];
            self.r.read_exact(&mut data)?;
            if stream == 0 {
                self.last_pts = pts;
                return Ok(Some(NutFrame { pts, data }));
            }
        }
    }
}

/// Byte cursor over a packet payload.
struct Cursor<'a>(&'a [u8], usize);

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        self.0.len() - self.1
    }
    fn v(&mut self) -> io::Result<u64> {
        let mut v = 0u64;
        for _ in 0..10 {
            let b = *self.0.get(self.1).ok_or_else(|| bad("truncated header"))?;
            self.1 += 1;
            v = (v << 7) | (b & 0x7f) as u64;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("overlong number"))
    }
    fn s(&mut self) -> io::Result<i64> {
        let t = self.v()? as i64 + 1;
        Ok(if t & 1 != 0 { -(t >> 1) } else { t >> 1 })
    }
    fn bytes(&mut self, n: u64) -> io::Result<Vec<u8>> {
        let n = usize::try_from(n).map_err(|_| bad("size"))?;
        let s = self
            .0
            .get(self.1..self.1.checked_add(n).ok_or_else(|| bad("size"))?)
            .ok_or_else(|| bad("truncated header"))?;
        self.1 += n;
        Ok(s.to_vec())
    }
    fn skip(&mut self, n: u64) -> io::Result<()> {
        self.bytes(n).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_of_data_plus_crc_is_zero() {
        let data = b"BetterVideo NUT";
        let c = crc32(0, data);
        let mut all = data.to_vec();
        all.extend(c.to_be_bytes());
        assert_eq!(crc32(0, &all), 0);
    }

    #[test]
    fn varints_roundtrip() {
        for v in [0u64, 1, 127, 128, 16383, 16384, u32::MAX as u64, 1 << 50] {
            let mut b = Vec::new();
            put_v(&mut b, v);
            assert_eq!(Cursor(&b, 0).v().unwrap(), v);
        }
        for s in [0i64, 1, -1, 63, -64, 1000, -1000] {
            let mut b = Vec::new();
            put_s(&mut b, s);
            assert_eq!(Cursor(&b, 0).s().unwrap(), s);
        }
    }

    #[test]
    fn writer_output_reads_back_with_exact_timestamps() {
        let info = StreamInfo {
            fourcc: b"RGB\x18".to_vec(),
            width: 3,
            height: 2,
            tb_num: 2,
            tb_den: 60000,
        };
        let mut w = NutWriter::new(Vec::new(), &info).unwrap();
        let frames: Vec<(i64, Vec<u8>)> = [0i64, 1001, 1002, 5000, 5001, 100_000]
            .iter()
            .map(|p| (*p, vec![(*p % 251) as u8; 18]))
            .collect();
        for (p, d) in &frames {
            w.write_frame(*p, d).unwrap();
        }
        let bytes = w.finish().unwrap();
        let mut r = NutReader::new(&bytes[..]).unwrap();
        assert_eq!(
            r.info(),
            &StreamInfo {
                tb_num: 1,
                tb_den: 30000,
                ..info
            }
        );
        for (p, d) in &frames {
            assert_eq!(
                r.next_frame().unwrap(),
                Some(NutFrame {
                    pts: *p,
                    data: d.clone()
                })
            );
        }
        assert_eq!(r.next_frame().unwrap(), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(NutReader::new(&b"not a nut file at all, definitely"[..]).is_err());
        let info = StreamInfo {
            fourcc: b"RGB\x18".to_vec(),
            width: 1,
            height: 1,
            tb_num: 1,
            tb_den: 25,
        };
        let mut w = NutWriter::new(Vec::new(), &info).unwrap();
        w.write_frame(0, &[1, 2, 3]).unwrap();
        let bytes = w.finish().unwrap();
        for cut in 0..bytes.len() {
            if let Ok(mut r) = NutReader::new(&bytes[..cut]) {
                let _ = r.next_frame();
            }
        }
    }
}
