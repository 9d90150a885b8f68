# FLM firewall rollback
# Run in an elevated PowerShell (Run as administrator).
$ErrorActionPreference = 'Continue'
netsh advfirewall firewall delete rule 'name=FLM proxy 8080,8081' dir=in protocol=TCP localport=8080,8081
