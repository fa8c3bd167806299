#!/usr/bin/env bash
# kinesalite (npm), a second local Kinesis: it reshards as the service does (a split closes the
# parent and routes new records to the children; moto keeps writing to the parent) and hands out
# sequence numbers of the service's width. The reshard tests run against it, with their leases
# in moto's DynamoDB.
#   scripts/kinesalite.sh start PORT DIR   # installs kinesalite into DIR once, starts it on
#                                          # 127.0.0.1:PORT, writes DIR/kinesalite.pid and .log
set -euo pipefail
KINESALITE_VERSION=3.3.3

case "${1:-}" in
start)
    port="${2:?usage: kinesalite.sh start PORT DIR}"
    dir="${3:?usage: kinesalite.sh start PORT DIR}"
    mkdir -p "$dir"
    if [ ! -f "$dir/node_modules/kinesalite/package.json" ] ||
        ! grep -q "\"version\": \"$KINESALITE_VERSION\"" "$dir/node_modules/kinesalite/package.json"; then
        echo "installing kinesalite $KINESALITE_VERSION into $dir (seconds, once)" >&2
        (cd "$dir" && npm install --silent --no-audit --no-fund --no-save "kinesalite@$KINESALITE_VERSION" >/dev/null)
    fi
    # Its command line binds every interface; its API takes the address. Streams are active at
    # once (no CREATING or UPDATING pause), in memory.
    cat >"$dir/serve.js" <<'JS'
const kinesalite = require('kinesalite');
const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 1000 });
server.listen(Number(process.argv[2]), '127.0.0.1', (err) => {
  if (err) throw err;
  console.log('kinesalite listening on 127.0.0.1:' + process.argv[2]);
});
JS
    (cd "$dir" && exec node serve.js "$port") >"$dir/kinesalite.log" 2>&1 &
    echo $! >"$dir/kinesalite.pid"
    exec "$(dirname "$0")/wait-for-port.sh" kinesalite "$port" "$dir/kinesalite.pid" "$dir/kinesalite.log"
    ;;
*)
    echo "usage: kinesalite.sh start PORT DIR" >&2
    exit 2
    ;;
esac
