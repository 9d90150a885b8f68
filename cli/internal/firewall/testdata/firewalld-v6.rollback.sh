#!/bin/sh
# FLM firewall rollback
# Run as root (sudo sh <this file>).
set -u
firewall-cmd --permanent '--remove-rich-rule=rule family="ipv6" source address="fd00:1::/64" port port="8080" protocol="tcp" accept'
firewall-cmd --permanent '--remove-rich-rule=rule family="ipv6" source address="fd00:1::/64" port port="8081" protocol="tcp" accept'
firewall-cmd --reload
