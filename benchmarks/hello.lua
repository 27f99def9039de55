-- async.lua's request without X-Fc-Invocation-Type: the same server answers it in sync, the
-- yardstick of async accepts (issue 14: accepts/s >= 0.5x this). Every answer must be a 200.
dofile((debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") or "") .. "report.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"job":"resize","id":42}'
