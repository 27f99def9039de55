-- A GET signed with ACS3-HMAC-SHA256 (fc-spec.md 8.4). x-acs-date is checked like Date (15
-- minutes), so the runner signs just before each wrk run and passes the signed headers here.
dofile((debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") or "") .. "report.lua")

wrk.method = "GET"
wrk.headers["Origin"] = "http://page.example"
wrk.headers["Host"] = required_env("FCBENCH_HOST")
wrk.headers["x-acs-date"] = required_env("FCBENCH_ACS_DATE")
wrk.headers["x-acs-content-sha256"] = required_env("FCBENCH_ACS_CONTENT_SHA256")
wrk.headers["Authorization"] = required_env("FCBENCH_AUTHORIZATION")
