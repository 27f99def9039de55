-- An async invocation: FC's X-Fc-Invocation-Type header and a small JSON body, POSTed. Every
-- answer must be a 202 (report.lua counts the statuses; benchmarks/async_figures.py checks them).
dofile((debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") or "") .. "report.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Fc-Invocation-Type"] = "Async"
wrk.body = '{"job":"resize","id":42}'
