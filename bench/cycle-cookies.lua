-- wrk script for bench/rss: asks Caddy-style forward-auth once for each person in the file named
-- by COOKIES (one `Cookie` header value per line). Each thread takes every n-th line and stops
-- when its share is done.
local threads = 0
function setup(thread)
   thread:set("id", threads)
   threads = threads + 1
end

local cookies, index, step, answered, share = {}, 0, 1, 0, 0

function init(args)
   local id = wrk.thread:get("id")
   step = tonumber(os.getenv("WRK_THREADS") or "2")
   local n = 0
   for line in io.lines(os.getenv("COOKIES")) do
      if n % step == id then cookies[#cookies + 1] = line end
      n = n + 1
   end
   share = #cookies
   wrk.headers["X-Forwarded-Method"] = "GET"
   wrk.headers["X-Forwarded-Proto"] = "http"
   wrk.headers["X-Forwarded-Host"] = os.getenv("HOST_PORT")
   wrk.headers["X-Forwarded-Uri"] = "/app"
end

function request()
   index = index % share + 1
   wrk.headers["Cookie"] = cookies[index]
   return wrk.format("GET")
end

function response(status, headers, body)
   answered = answered + 1
   if answered >= share then wrk.thread:stop() end
end
