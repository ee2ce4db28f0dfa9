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
    # Loaded once per process: the host's later requests skip the import.
    if ('Microsoft.Web.Administration.ServerManager' -as [type]) { return New-Object Microsoft.Web.Administration.ServerManager }
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

# Invoke-Netsh runs netsh with its output as text. Under
# $ErrorActionPreference='Stop', the 5.1 shell turns a native
# command's stderr merged with 2>&1 into an error record that stops the
# script: the preference is lowered for this call, and the exit code decides.
function Invoke-Netsh([string[]]$netshArgs) {
    $ErrorActionPreference = 'Continue'
    $out = @(& netsh.exe @netshArgs 2>&1 | ForEach-Object { [string]$_ })
    @{ exit = $LASTEXITCODE; output = ($out -join "`n") }
}

function Get-SslKey($c) {
    if ($c.sni) { "hostnameport=$($c.hostName):$($c.port)" } else { "ipport=$($c.ip):$($c.port)" }
}

# Assert-Certificate checks, through the X509Store API, that a certificate
# is in the LocalMachine store with its private key: without the key
# netsh fails with error 1312, and an FTP site cannot start TLS.
function Assert-Certificate([string]$hash, [string]$store) {
    if (-not $store) { $store = 'My' }
    $st = New-Object System.Security.Cryptography.X509Certificates.X509Store($store, [System.Security.Cryptography.X509Certificates.StoreLocation]::LocalMachine)
    $found = @()
    try {
        $st.Open([System.Security.Cryptography.X509Certificates.OpenFlags]'ReadOnly, OpenExistingOnly')
        $found = @($st.Certificates.Find([System.Security.Cryptography.X509Certificates.X509FindType]::FindByThumbprint, $hash, $false))
    } catch {
        $found = @()
    } finally {
        $st.Close()
    }
    if ($found.Count -eq 0) {
        Fail 'CertificateMissing' "certificate $hash is not in Cert:\LocalMachine\$store on $env:COMPUTERNAME; import it (with its private key) on every node of the placement"
    }
    if (-not $found[0].HasPrivateKey) {
        Fail 'CertificateMissing' "certificate $hash in Cert:\LocalMachine\$store on $env:COMPUTERNAME has no private key (HTTP.sys refuses it with error 1312); import the .pfx with its key, not the .cer"
    }
}

# Get-SslHash is the certificate hash HTTP.sys binds to key now, or ''.
# The labels of netsh's output are translated; the hash is the one run of
# 40 hex digits in it.
function Get-SslHash([string]$key) {
    $r = Invoke-Netsh @('http', 'show', 'sslcert', $key)
    if ($r.exit -ne 0) { return '' }
    $m = [regex]::Match($r.output, '\b[0-9a-fA-F]{40}\b')
    if ($m.Success) { $m.Value.ToUpperInvariant() } else { '' }
}

# Add-SslCert makes HTTP.sys bind key to the certificate: nothing when it
# already does, an update when it binds another one (never a delete and an
# add, which would leave the address without a certificate in between),
# else an add. It returns $true when it created the binding, for the
# caller to roll back if the site then fails to start.
function Add-SslCert($c) {
    $store = if ($c.store) { [string]$c.store } else { 'My' }
    Assert-Certificate $c.hash $store
    $key = Get-SslKey $c
    $current = Get-SslHash $key
    if ($current -eq ([string]$c.hash).ToUpperInvariant()) { return $false }
    $verb = if ($current) { 'update' } else { 'add' }
    $r = Invoke-Netsh @('http', $verb, 'sslcert', $key, "certhash=$($c.hash)", "appid=$AppId", "certstorename=$store")
    if ($r.exit -ne 0) { Fail 'SslBinding' "netsh http $verb sslcert $key exited $($r.exit): $($r.output)" }
    $verb -eq 'add'
}

# Get-SiteSslKeys lists the HTTP.sys keys a site's https bindings use.
function Get-SiteSslKeys($site) {
    $keys = @()
    foreach ($b in $site.Bindings) {
        if ($b.Protocol -ne 'https') { continue }
        $parts = ([string]$b.BindingInformation).Split(':')
        if ($parts.Count -lt 3) { continue }
        $port = $parts[$parts.Count - 2]
        $hostName = $parts[$parts.Count - 1]
        $ip = ($parts[0..($parts.Count - 3)] -join ':')
        if ($ip -eq '*' -or -not $ip) { $ip = '0.0.0.0' }
        if (([int]$b['sslFlags'] -band 1) -and $hostName) { $keys += "hostnameport=$($hostName):$port" } else { $keys += "ipport=$($ip):$port" }
    }
    $keys
}

# Remove-SslCert removes one HTTP.sys binding, unless another site (one
# Sitekeeper manages or not) uses the same key, such as 0.0.0.0:443: that
# binding is theirs too, and is never deleted from under them. A missing
# binding is already the goal (netsh exits 1 for it [verify]).
function Remove-SslCert($c, $sm, [string]$siteName) {
    $key = Get-SslKey $c
    if ($sm) {
        foreach ($other in $sm.Sites) {
            if ($other.Name -eq $siteName) { continue }
            if (@(Get-SiteSslKeys $other) -contains $key) { return }
        }
    }
    $r = Invoke-Netsh @('http', 'delete', 'sslcert', $key)
    if ($r.exit -ne 0 -and $r.exit -ne 1) { Fail 'SslBinding' "netsh http delete sslcert $key exited $($r.exit): $($r.output)" }
}
}
