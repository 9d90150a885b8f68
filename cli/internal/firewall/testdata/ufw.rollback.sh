#!/bin/sh
# FLM firewall rollback
# Run as root (sudo sh <this file>).
set -u
ufw delete allow proto tcp from 192.168.1.0/24 to any port 8080
ufw delete allow proto tcp from 192.168.1.0/24 to any port 8081
