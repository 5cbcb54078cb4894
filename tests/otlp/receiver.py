"""An OTLP/HTTP trace receiver for the tests: parses each export with the
OpenTelemetry project's own protobuf classes (opentelemetry-proto), so a
malformed message fails here as it would in a collector, and appends every
span, as opentelemetry-proto's JSON form, one per line to the file named by
the first argument. Prints the port it listens on, then serves until killed.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

OUT = sys.argv[1]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        ok = self.path == "/v1/traces" and self.headers.get("content-type") == "application/x-protobuf"
        try:
            req = ExportTraceServiceRequest.FromString(body) if ok else None
        except Exception as e:  # a message a collector would refuse
            req = None
            print(f"unparseable export: {e}", file=sys.stderr, flush=True)
        if req is None:
            self.send_response(400)
            self.end_headers()
            return
        with open(OUT, "a", encoding="utf-8") as f:
            for rs in req.resource_spans:
                resource = MessageToDict(rs.resource)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        f.write(json.dumps({"resource": resource, "scope": MessageToDict(ss.scope), "span": MessageToDict(span)}) + "\n")
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
