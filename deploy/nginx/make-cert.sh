#!/bin/sh
# A self-signed certificate for trying the deployment on one machine (loopback). A real
# deployment uses one from a CA (e.g. certbot); the nginx config reads the same two files.
# Usage: deploy/nginx/make-cert.sh DIR [NAME]   (default NAME: localhost)
set -eu
dir=${1:?directory}
name=${2:-localhost}
mkdir -p "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$name" \
    -addext "subjectAltName=DNS:$name,DNS:localhost,IP:127.0.0.1" \
    -keyout "$dir/civicbot.key" -out "$dir/civicbot.crt" 2>/dev/null
chmod 600 "$dir/civicbot.key"
echo "$dir/civicbot.crt"
