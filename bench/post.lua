-- wrk script: POST the file named by $BODY as JSON (a Gatekeeper ProviderRequest).
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
