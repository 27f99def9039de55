-- A GET signed with FC's legacy header signature. The signature covers Date, which FC accepts
-- for 15 minutes, so the runner signs just before each wrk run and passes both headers here.
dofile((debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") or "") .. "report.lua")

wrk.method = "GET"
wrk.headers["Origin"] = "http://page.example"
wrk.headers["Date"] = required_env("FCBENCH_DATE")
wrk.headers["Authorization"] = required_env("FCBENCH_AUTHORIZATION")
