-- GET from a browser page: Origin makes CorsDefaults echo it with FC's CORS headers.
dofile((debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") or "") .. "report.lua")

wrk.method = "GET"
wrk.headers["Origin"] = "http://page.example"
