# Shared by every Sitekeeper script: strict errors, no progress records on
# stderr, UTF-8 both ways, one JSON request on stdin, one JSON reply on stdout.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$utf8 = New-Object System.Text.UTF8Encoding $false
[Console]::InputEncoding = $utf8
[Console]::OutputEncoding = $utf8

# Fail stops the script with an error kind the Go side maps onto a typed
# error (NotFound, Exists, BindingConflict, AddressInUse, ...).
function Fail([string]$kind, [string]$message) {
    $ex = New-Object System.InvalidOperationException $message
    $ex.Data['sitekeeper.kind'] = $kind
    throw $ex
}

function Send($doc) {
    [Console]::Out.Write((ConvertTo-Json -InputObject $doc -Depth 10 -Compress))
}

# Get-SkError turns a caught error into the reply's error: the first
# sitekeeper kind on the exception chain and every HRESULT on it.
function Get-SkError($record) {
    $e = $record.Exception
    $kind = ''
    $codes = @()
    for ($x = $e; $x; $x = $x.InnerException) {
        if (-not $kind -and $x.Data -and $x.Data['sitekeeper.kind']) { $kind = [string]$x.Data['sitekeeper.kind'] }
        $codes += ('0x{0:X8}' -f $x.HResult)
    }
    @{ kind = $kind; hresults = $codes; message = $e.Message }
}

# Get-ServerManager returns a fresh Microsoft.Web.Administration
# ServerManager: the IISAdministration module loads the assembly, and the DLL
# itself is the fallback on servers without the module.
function Get-ServerManager {
    try {
        Import-Module IISAdministration -ErrorAction Stop
    } catch {
        $dll = Join-Path $env:windir 'system32\inetsrv\Microsoft.Web.Administration.dll'
        if (-not (Test-Path -LiteralPath $dll)) {
            Fail 'ModuleMissing' 'IIS management is not installed (no IISAdministration module, no Microsoft.Web.Administration.dll): Install-WindowsFeature Web-Mgmt-Tools,Web-Scripting-Tools'
        }
        [void][Reflection.Assembly]::LoadFrom($dll)
    }
    New-Object Microsoft.Web.Administration.ServerManager
}

function Get-Site($sm, [string]$name) {
    $site = $sm.Sites | Where-Object { $_.Name -eq $name } | Select-Object -First 1
    if (-not $site) { Fail 'NotFound' "site `"$name`" not found" }
    $site
}

function Test-Protocol($site, [string[]]$protocols) {
    foreach ($b in $site.Bindings) { if ($protocols -contains $b.Protocol.ToLowerInvariant()) { return $true } }
    $false
}

# The application ID Sitekeeper's HTTP.sys bindings carry.
$AppId = '{5e3b8f0c-7d2a-4c1e-9b6f-2a8d4c6e1f30}'

function Invoke-Netsh([string[]]$netshArgs) {
    $out = & netsh.exe @netshArgs 2>&1
    @{ exit = $LASTEXITCODE; output = ($out -join "`n") }
}

function Get-SslKey($c) {
    if ($c.sni) { "hostnameport=$($c.hostName):$($c.port)" } else { "ipport=$($c.ip):$($c.port)" }
}

# Add-SslCert creates the HTTP.sys binding of one https binding, after
# checking that the certificate is in the node's LocalMachine store.
function Add-SslCert($c) {
    $store = if ($c.store) { $c.store } else { 'My' }
    if (-not (Test-Path -LiteralPath "Cert:\LocalMachine\$store\$($c.hash)")) {
        Fail 'CertificateMissing' "certificate $($c.hash) is not in Cert:\LocalMachine\$store on $env:COMPUTERNAME; import it (with its private key) on every node of the placement"
    }
    $key = Get-SslKey $c
    [void](Invoke-Netsh @('http', 'delete', 'sslcert', $key))
    $r = Invoke-Netsh @('http', 'add', 'sslcert', $key, "certhash=$($c.hash)", "appid=$AppId", "certstorename=$store")
    if ($r.exit -ne 0) { Fail 'SslBinding' "netsh http add sslcert $key exited $($r.exit): $($r.output)" }
}

# Remove-SslCert removes one HTTP.sys binding; a missing one is already the
# goal (netsh exits 1 for it [verify]).
function Remove-SslCert($c) {
    $r = Invoke-Netsh @('http', 'delete', 'sslcert', (Get-SslKey $c))
    if ($r.exit -ne 0 -and $r.exit -ne 1) { Fail 'SslBinding' "netsh http delete sslcert exited $($r.exit): $($r.output)" }
}
