//! Decoded video frames as the pipeline moves them: packed RGB, 8 or 16 bits.

/// Sample size of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// `rgb24`: one byte per sample.
    U8,
    /// `rgb48le`: two little-endian bytes per sample (used for >8-bit sources).
    U16,
}

impl Depth {
    /// Bytes per sample.
    pub fn bytes(self) -> usize {
        match self {
            Self::U8 => 1,
            Self::U16 => 2,
        }
    }

    /// Largest sample value.
    pub fn max(self) -> f32 {
        match self {
            Self::U8 => 255.0,
            Self::U16 => 65535.0,
        }
    }

    /// FFmpeg pixel format name.
    pub fn pix_fmt(self) -> &'static str {
        match self {
            Self::U8 => "rgb24",
            Self::U16 => "rgb48le",
        }
    }
}

/// One packed RGB frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Sample size.
    pub depth: Depth,
    /// `width * height * 3 * depth.bytes()` bytes.
    pub data: Vec<u8>,
}

impl Frame {
    /// Bytes a frame of this size needs.
    pub fn byte_len(width: usize, height: usize, depth: Depth) -> usize {
        width * height * 3 * depth.bytes()
    }

    /// A black frame.
    pub fn new(width: usize, height: usize, depth: Depth) -> Self {
        Self {
            width,
            height,
            depth,
            data: vec![0; Self::byte_len(width, height, depth)],
        }
    }

    /// Sample `i` (0-based over all samples) as a float in [0, 1].
    #[inline]
    pub fn sample(&self, i: usize) -> f32 {
        match self.depth {
            Depth::U8 => self.data[i] as f32 / 255.0,
            Depth::U16 => {
                u16::from_le_bytes([self.data[2 * i], self.data[2 * i + 1]]) as f32 / 65535.0
            }
        }
    }
}
