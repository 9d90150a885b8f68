#!/bin/sh
# FLM firewall rollback
# Run as root (sudo sh <this file>).
set -u
sh -c 'nft -a list chain inet filter input | sed -n '\''s/.*comment "flm-proxy" # handle \([0-9][0-9]*\)$/\1/p'\'' | while read -r h; do nft delete rule inet filter input handle "$h"; done'
