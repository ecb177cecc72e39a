// CUDA kernels of BetterVideo's GPU backend, compiled at run time with NVRTC.
// Layout: channel-major (CHW) float tensors. Every kernel is a grid-stride loop.
#define LOOP(i, n) for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

extern "C" __global__ void hwc_to_chw(const float* __restrict__ in, float* __restrict__ out, int c, int hw) {
    LOOP(i, (long long)c * hw) { int ch = i / hw; long long p = i % hw; out[i] = in[p * c + ch]; }
}

extern "C" __global__ void chw_to_hwc(const float* __restrict__ in, float* __restrict__ out, int c, int hw) {
    LOOP(i, (long long)c * hw) { int ch = i % c; long long p = i / c; out[i] = in[(long long)ch * hw + p]; }
}

// col[(ci*k*k + ky*k + kx) * h*w + y*w + x] = in[ci][y + ky - pad][x + kx - pad] (zero outside)
extern "C" __global__ void im2col(const float* __restrict__ in, float* __restrict__ col, int c, int h, int w, int k, int pad) {
    long long hw = (long long)h * w;
    LOOP(i, (long long)c * k * k * hw) {
        long long p = i % hw; int row = i / hw;
        int kx = row % k, ky = (row / k) % k, ci = row / (k * k);
        int y = (int)(p / w) + ky - pad, x = (int)(p % w) + kx - pad;
        col[i] = (y >= 0 && y < h && x >= 0 && x < w) ? in[((long long)ci * h + y) * w + x] : 0.0f;
    }
}

// x[ch][p] += bias[ch]; then PReLU with slope[ch] when has_slope.
extern "C" __global__ void bias_act(float* __restrict__ x, const float* __restrict__ bias, const float* __restrict__ slope, int c, int hw, int has_slope) {
    LOOP(i, (long long)c * hw) {
        int ch = i / hw; float v = x[i] + bias[ch];
        if (has_slope && v < 0.0f) v *= slope[ch];
        x[i] = v;
    }
}

extern "C" __global__ void prelu(float* __restrict__ x, const float* __restrict__ slope, int c, int hw) {
    LOOP(i, (long long)c * hw) { float v = x[i]; if (v < 0.0f) x[i] = v * slope[i / hw]; }
}

// out[ch][y*r+i][x*r+j] = in[ch*r*r + i*r + j][y][x]
extern "C" __global__ void pixel_shuffle(const float* __restrict__ in, float* __restrict__ out, int oc, int h, int w, int r) {
    int ow = w * r, oh = h * r;
    LOOP(i, (long long)oc * oh * ow) {
        int ox = i % ow, oy = (i / ow) % oh, ch = i / ((long long)ow * oh);
        int y = oy / r, ii = oy % r, x = ox / r, j = ox % r;
        out[i] = in[(((long long)ch * r * r + ii * r + j) * h + y) * w + x];
    }
}

extern "C" __global__ void resize_nearest(const float* __restrict__ in, float* __restrict__ out, int c, int h, int w, int oh, int ow, float hs, float ws) {
    LOOP(i, (long long)c * oh * ow) {
        int ox = i % ow, oy = (i / ow) % oh, ch = i / ((long long)ow * oh);
        int sy = min((int)(oy * hs), h - 1), sx = min((int)(ox * ws), w - 1);
        out[i] = in[((long long)ch * h + sy) * w + sx];
    }
}

__device__ void cubic(float f, float* c) {
    const float A = -0.75f;
    float f0 = f + 1.0f, f1 = f, f2 = 1.0f - f;
    c[0] = A * f0 * f0 * f0 - 5.0f * A * f0 * f0 + 8.0f * A * f0 - 4.0f * A;
    c[1] = (A + 2.0f) * f1 * f1 * f1 - (A + 3.0f) * f1 * f1 + 1.0f;
    c[2] = (A + 2.0f) * f2 * f2 * f2 - (A + 3.0f) * f2 * f2 + 1.0f;
    c[3] = 1.0f - c[0] - c[1] - c[2];
}

// Keys bicubic, A = -0.75, half-pixel centres, edge samples repeated (as ncnn).
extern "C" __global__ void resize_bicubic(const float* __restrict__ in, float* __restrict__ out, int c, int h, int w, int oh, int ow) {
    LOOP(i, (long long)c * oh * ow) {
        int ox = i % ow, oy = (i / ow) % oh, ch = i / ((long long)ow * oh);
        float fx = (float)((ox + 0.5) * ((double)w / ow) - 0.5), fy = (float)((oy + 0.5) * ((double)h / oh) - 0.5);
        int sx = (int)floorf(fx), sy = (int)floorf(fy);
        float cx[4], cy[4]; cubic(fx - sx, cx); cubic(fy - sy, cy);
        const float* src = in + (long long)ch * h * w;
        float acc = 0.0f;
        for (int a = 0; a < 4; a++) {
            int yy = min(max(sy - 1 + a, 0), h - 1);
            float row = 0.0f;
            for (int b = 0; b < 4; b++) { int xx = min(max(sx - 1 + b, 0), w - 1); row += src[(long long)yy * w + xx] * cx[b]; }
            acc += row * cy[a];
        }
        out[i] = acc;
    }
}

// a = ka * a + kb * b (an ncnn Eltwise sum with coefficients; BinaryOp add is 1, 1).
extern "C" __global__ void add(float* __restrict__ a, const float* __restrict__ b, float ka, float kb, long long n) {
    LOOP(i, n) { a[i] = ka * a[i] + kb * b[i]; }
}

// Clamps the core [sx, sx+cw) x [sy, sy+ch) of a 3 x h x w output to [0, 1],
// scales to maxv, rounds half away from zero (as the CPU path) and writes it
// as packed RGB with `bytes` little-endian bytes per sample.
extern "C" __global__ void quantize_core(const float* __restrict__ in, unsigned char* __restrict__ out, int h, int w,
                                         int sx, int sy, int cw, int chh, float maxv, int bytes) {
    LOOP(i, (long long)chh * cw * 3) {
        int c = i % 3; long long px = i / 3; int x = px % cw, y = px / cw;
        float v = in[((long long)c * h + (sy + y)) * w + (sx + x)];
        unsigned int q = (unsigned int)roundf(fminf(fmaxf(v, 0.0f), 1.0f) * maxv);
        if (bytes == 1) { out[i] = (unsigned char)q; }
        else { out[2 * i] = (unsigned char)(q & 255); out[2 * i + 1] = (unsigned char)(q >> 8); }
    }
}
