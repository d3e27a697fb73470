#!/bin/bash
# pattern: LLM serving: a server step in the background, a client step attaching to it with --overlap
# expect: ^client got: served from the named container$
# expect: ^server done$
#SBATCH -N 1
#SBATCH -n 2

IMAGE="vllm/vllm-openai:v0.6.3"
PORT=$(( 20000 + SLURM_JOB_ID % 20000 ))
cat > serve.py <<'EOF'
import http.server, os, sys
os.makedirs("/srv/www", exist_ok=True)  # inside the container's own (writable) filesystem
with open("/srv/www/index.txt", "w") as f:
    f.write("served from the named container\n")
os.chdir("/srv/www")
class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass
    def do_GET(self):
        super().do_GET()
        self.server.done = self.path == "/index.txt"
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
server.done = False
while not server.done:
    server.handle_request()
print("server done", flush=True)
EOF
srun --overlap -n1 --container-image="$IMAGE" --container-name=server python3 "$PWD/serve.py" "$PORT" &
server=$!
until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
    kill -0 "$server" 2>/dev/null || { echo "server step ended early"; exit 1; }
    sleep 0.2
done
srun --overlap -n1 --container-name=server:exec python3 -c "
import urllib.request
print('client got:', urllib.request.urlopen('http://127.0.0.1:$PORT/index.txt').read().decode().strip())
"
wait $server
