# Shared by benches/load.sh and benches/profile.sh (sourced, not run): the fast upstream and
# the sidecar config both measure against.
#
# write_upstream_conf DIR PORT   nginx, one worker, answering a fixed WeCom JSON (and gettoken)
# write_sidecar_conf DIR PORT ADMIN_PORT UPSTREAM_PORT
#                                the sidecar with a token-injecting route, a quota and metrics
# write_proxy_conf FILE PORT WORKERS ACCESS_LOG UPSTREAM_PORT
#                                nginx as a keep-alive reverse proxy to the upstream (its pid
#                                in FILE.pid); ACCESS_LOG is `off` or `PATH combined buffer=64k`

write_upstream_conf() {
  local dir=$1 port=$2
  local body='{"errcode":0,"errmsg":"ok","userid":"zhangsan","name":"Zhang San","department":[1],"status":1}'
  cat > "$dir/upstream.conf" <<CONF
worker_processes 1; daemon off; pid $dir/up.pid; error_log $dir/up.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$port;
    location = /cgi-bin/gettoken { default_type application/json; return 200 '{"errcode":0,"errmsg":"ok","access_token":"BENCHTOKEN","expires_in":7200}'; }
    location / { default_type application/json; return 200 '$body'; } } }
CONF
}

write_sidecar_conf() {
  local dir=$1 port=$2 admin=$3 upstream=$4
  cat > "$dir/sidecar.yaml" <<CONF
listen: "127.0.0.1:$port"
admin_listen: "127.0.0.1:$admin"
upstreams:
  primary: { url: "http://127.0.0.1:$upstream" }
apps:
  - { name: bench, corp_id: wwbench, secret_env: BENCH_SECRET, default: true }
defaults:
  quota: ["100000000/min"]
CONF
}

write_proxy_conf() {
  local file=$1 port=$2 workers=$3 log=$4 upstream=$5
  cat > "$file" <<CONF
worker_processes $workers; daemon off; pid $file.pid; error_log $file.err;
events { worker_connections 4096; }
http { access_log $log; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$upstream; keepalive 256; }
  server { listen 127.0.0.1:$port;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
}
