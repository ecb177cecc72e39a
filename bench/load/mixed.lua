-- wrk script: mixed API traffic of one client population. Each request picks, in
-- turn: a status poll (GET /v1/videos/{id}), a link mint (POST …/links), a status
-- poll again, a small download (GET …/content, 64 KiB). Env: LOAD_KEY, LOAD_VIDEO.
local key = os.getenv("LOAD_KEY")
local video = os.getenv("LOAD_VIDEO")
local n = 0
wrk.headers["Authorization"] = "Bearer " .. key

request = function()
  n = n + 1
  local k = n % 4
  if k == 1 then
    return wrk.format("POST", "/v1/videos/" .. video .. "/links",
      -- A headers table replaces wrk.headers instead of adding to it.
      { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key },
      '{"ttl_seconds":300}')
  elseif k == 3 then
    return wrk.format("GET", "/v1/videos/" .. video .. "/content")
  end
  return wrk.format("GET", "/v1/videos/" .. video)
end

dofile(os.getenv("LOAD_REPORT"))
