-- wrk script: every request uploads a new 16 KiB video (simple upload, sealed as
-- it arrives). Env: LOAD_KEY.
local key = os.getenv("LOAD_KEY")
local body = string.rep("bettervideo load test 0123456789abcdef", 432):sub(1, 16384)
wrk.method = "POST"
wrk.path = "/v1/videos?name=load.bin"
wrk.body = body
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Content-Type"] = "application/octet-stream"

dofile(os.getenv("LOAD_REPORT"))
