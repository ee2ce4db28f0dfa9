# Lists every site: bindings with the HTTP.sys certificate, root path and
# pool, serverAutoStart, and run state. W3SVC's Site.State throws 0x800710D8
# for sites it does not run (FTP-only), so an FTP site's state is read from
# its ftpServer element instead, and a failing read is "Unknown", never an
# error that breaks the listing.
function Get-FtpState($site) {
    try {
        $f = $site.GetChildElement('ftpServer')
        switch ([int]$f.GetAttributeValue('state')) { 1 { 'Started' } 3 { 'Stopped' } default { 'Unknown' } }
    } catch { 'Unknown' }
}

function Invoke-Request($req) {
    $sm = Get-ServerManager
    $sites = @()
    foreach ($s in $sm.Sites) {
        $bindings = @()
        foreach ($b in $s.Bindings) {
            $hash = ''; $store = ''; $flags = 0
            try {
                if ($b.CertificateHash) { $hash = -join ($b.CertificateHash | ForEach-Object { $_.ToString('X2') }) }
                $store = [string]$b.CertificateStoreName
                $flags = [int]$b.GetAttributeValue('sslFlags')
            } catch { }
            $bindings += @{ protocol = [string]$b.Protocol; bindingInformation = [string]$b.BindingInformation; sslFlags = $flags; certHash = $hash; certStore = $store }
        }
        $path = ''; $pool = ''
        $root = $s.Applications['/']
        if ($root) {
            $pool = [string]$root.ApplicationPoolName
            $vd = $root.VirtualDirectories['/']
            if ($vd) { $path = [string]$vd.PhysicalPath }
        }
        $webState = ''
        if (Test-Protocol $s @('http', 'https')) {
            try { $webState = [string]$s.State } catch { $webState = 'Unknown' }
        }
        $ftpState = ''; $ftpPolicy = ''; $ftpCert = ''
        if (Test-Protocol $s @('ftp')) {
            $ftpState = Get-FtpState $s
            try {
                $ssl = $s.GetChildElement('ftpServer').GetChildElement('security').GetChildElement('ssl')
                $ftpPolicy = [string]$ssl.GetAttributeValue('controlChannelPolicy')
                $ftpCert = [string]$ssl.GetAttributeValue('serverCertHash')
            } catch { }
        }
        $sites += @{
            id = [int64]$s.Id; name = [string]$s.Name; bindings = $bindings
            physicalPath = $path; appPool = $pool; serverAutoStart = [bool]$s.ServerAutoStart
            webState = $webState; ftpState = $ftpState; ftpPolicy = $ftpPolicy; ftpCertHash = $ftpCert
        }
    }
    @{ sites = $sites }
}
