-- A GET with an RS256 bearer token the runner minted (its JWKS is in the trigger config).
dofile((debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") or "") .. "report.lua")

wrk.method = "GET"
wrk.headers["Origin"] = "http://page.example"
wrk.headers["Authorization"] = "Bearer " .. required_env("FCBENCH_TOKEN")
