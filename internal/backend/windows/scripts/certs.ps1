# Reports, for each certificate a standby would bind, whether it is in the
# machine's store with a private key this node can use, and when it
# expires. Store names and thumbprints are checked here too: they reach a
# provider path.
function Get-CertInfo($c) {
    $store = [string]$c.store
    $thumb = ([string]$c.thumbprint).ToUpperInvariant()
    if ($store -notmatch '^[A-Za-z][A-Za-z0-9]{0,31}$') { Fail 'BadRequest' "certificate store `"$store`" is not a store name" }
    if ($thumb -notmatch '^[0-9A-F]{40,64}$') { Fail 'BadRequest' "`"$thumb`" is not a certificate thumbprint" }
    $cert = Get-Item -LiteralPath "Cert:\LocalMachine\$store\$thumb" -ErrorAction SilentlyContinue
    if (-not $cert) { return @{ store = $store; thumbprint = $thumb; found = $false } }
    # HasPrivateKey is true while the key container is gone or unreadable
    # (a certificate copied without its key file, an ACL of another
    # account); opening the key is the only proof HTTP.sys could use it.
    $usable = $false
    if ($cert.HasPrivateKey) {
        try {
            $k = [System.Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($cert)
            if (-not $k) { $k = [System.Security.Cryptography.X509Certificates.ECDsaCertificateExtensions]::GetECDsaPrivateKey($cert) }
            $usable = [bool]$k
        } catch { $usable = $false }
    }
    @{ store = $store; thumbprint = $thumb; found = $true; hasPrivateKey = [bool]$cert.HasPrivateKey; keyUsable = $usable
       notAfter = $cert.NotAfter.ToUniversalTime().ToString('o'); subject = [string]$cert.Subject }
}

function Invoke-Request($req) {
    @{ certificates = @(@($req.certificates) | Where-Object { $_ } | ForEach-Object { Get-CertInfo $_ }) }
}
