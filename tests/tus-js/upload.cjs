// Uploads a file to bv serve with tus-js-client, aborts part-way, then
// resumes the same upload from its URL. Prints one JSON line with what
// happened. Usage: node upload.cjs <base url> <api key> <file>
// (NODE_EXTRA_CA_CERTS must name the server's certificate; NODE_PATH the
// node_modules that scripts/setup.sh installed.)
"use strict";
const fs = require("fs");
const tus = require("tus-js-client");

const [base, key, file] = process.argv.slice(2);
const data = fs.readFileSync(file);
const seen = { heads: [], patches: 0, videoId: null };

function options(extra) {
  return Object.assign(
    {
      endpoint: base + "/v1/uploads",
      chunkSize: 1024 * 1024,
      retryDelays: [0, 500, 1000],
      headers: { Authorization: "Bearer " + key },
      metadata: { filename: "tus-js.bin", filetype: "video/mp4" },
      onAfterResponse(req, res) {
        const m = req.getMethod();
        if (m === "HEAD") seen.heads.push(Number(res.getHeader("Upload-Offset")));
        if (m === "PATCH") seen.patches += 1;
        const v = res.getHeader("bv-video-id");
        if (v) seen.videoId = v;
      },
    },
    extra,
  );
}

function first() {
  return new Promise((resolve, reject) => {
    const up = new tus.Upload(
      data,
      options({
        onError: reject,
        onSuccess: () => reject(new Error("finished before it could be interrupted")),
        onChunkComplete(_chunk, sent) {
          if (sent >= data.length * 0.4) {
            up.abort().then(() => resolve({ url: up.url, sent }));
          }
        },
      }),
    );
    up.start();
  });
}

function resume(url) {
  return new Promise((resolve, reject) => {
    const up = new tus.Upload(
      data,
      options({ uploadUrl: url, onError: reject, onSuccess: () => resolve(up.url) }),
    );
    up.start();
  });
}

(async () => {
  const a = await first();
  const url = await resume(a.url);
  console.log(JSON.stringify({ url, interruptedAt: a.sent, heads: seen.heads, patches: seen.patches, videoId: seen.videoId }));
})().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
