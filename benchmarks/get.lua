-- Plain GET: what the bare app and the bare Flask app answer 200.
dofile((debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") or "") .. "report.lua")

wrk.method = "GET"
