# Changes one site's configuration; every change of one request is committed
# together by one CommitChanges. Bindings are a set difference: only the
# named ones are removed or added, never clear-and-re-add. Certificates are
# not set here: the HTTP.sys binding belongs to bring-up (iis-run.ps1),
# except for a binding changed while the site runs.
function Set-FtpSsl($site, $req) {
    if (-not $req.ftpSSL) { return }
    $ssl = $site.GetChildElement('ftpServer').GetChildElement('security').GetChildElement('ssl')
    if ($req.ftpSSL -eq 'None') {
        $ssl.SetAttributeValue('controlChannelPolicy', 'SslAllow')
        $ssl.SetAttributeValue('dataChannelPolicy', 'SslAllow')
        $ssl.SetAttributeValue('serverCertHash', '')
    } else {
        $ssl.SetAttributeValue('controlChannelPolicy', 'SslRequire')
        $ssl.SetAttributeValue('dataChannelPolicy', 'SslRequire')
        $ssl.SetAttributeValue('serverCertHash', [string]$req.ftpCertHash)
        if ($req.ftpCertStore) { $ssl.SetAttributeValue('serverCertStoreName', [string]$req.ftpCertStore) }
    }
}

function Add-Bindings($site, $list) {
    foreach ($b in @($list)) {
        if (-not $b) { continue }
        $dup = $site.Bindings | Where-Object { $_.Protocol -eq $b.protocol -and $_.BindingInformation -eq $b.bindingInformation }
        if ($dup) { Fail 'Exists' "site `"$($site.Name)`" already has binding $($b.protocol) $($b.bindingInformation)" }
        $nb = $site.Bindings.Add([string]$b.bindingInformation, [string]$b.protocol)
        if ($b.sslFlags) { $nb.SetAttributeValue('sslFlags', [int]$b.sslFlags) }
    }
}

function Invoke-Request($req) {
    $sm = Get-ServerManager
    switch ($req.op) {
        'create' {
            if ($sm.Sites | Where-Object { $_.Name -eq $req.name -or $_.Id -eq [int64]$req.id }) {
                Fail 'Exists' "a site named `"$($req.name)`" or with id $($req.id) already exists"
            }
            $first = @($req.add)[0]
            $site = $sm.Sites.Add([string]$req.name, [string]$first.protocol, [string]$first.bindingInformation, [string]$req.physicalPath)
            $site.Id = [int64]$req.id
            if ($first.sslFlags) { $site.Bindings[0].SetAttributeValue('sslFlags', [int]$first.sslFlags) }
            Add-Bindings $site (@($req.add) | Select-Object -Skip 1)
            $site.ServerAutoStart = [bool]$req.serverAutoStart
            if ($req.appPool) { $site.Applications['/'].ApplicationPoolName = [string]$req.appPool }
            if (Test-Protocol $site @('ftp')) {
                $site.GetChildElement('ftpServer').SetAttributeValue('serverAutoStart', [bool]$req.serverAutoStart)
                Set-FtpSsl $site $req
            }
        }
        'update' {
            $site = Get-Site $sm $req.name
            foreach ($b in @($req.remove)) {
                if (-not $b) { continue }
                $old = $site.Bindings | Where-Object { $_.Protocol -eq $b.protocol -and $_.BindingInformation -eq $b.bindingInformation } | Select-Object -First 1
                if ($old) { $site.Bindings.Remove($old) }
            }
            Add-Bindings $site $req.add
            if ($null -ne $req.physicalPath) { $site.Applications['/'].VirtualDirectories['/'].PhysicalPath = [string]$req.physicalPath }
            if ($null -ne $req.appPool) { $site.Applications['/'].ApplicationPoolName = [string]$req.appPool }
            if ($null -ne $req.serverAutoStart) {
                $site.ServerAutoStart = [bool]$req.serverAutoStart
                if (Test-Protocol $site @('ftp')) { $site.GetChildElement('ftpServer').SetAttributeValue('serverAutoStart', [bool]$req.serverAutoStart) }
            }
        }
        'rename' {
            $site = Get-Site $sm $req.name
            if ($sm.Sites | Where-Object { $_.Name -eq $req.newName }) { Fail 'Exists' "a site named `"$($req.newName)`" already exists" }
            $site.Name = [string]$req.newName
        }
        'delete' {
            $site = Get-Site $sm $req.name
            $sm.Sites.Remove($site)
        }
        default { Fail 'BadRequest' "unknown op `"$($req.op)`"" }
    }
    $sm.CommitChanges()
    # A binding changed on a running site takes its HTTP.sys binding along.
    if ($req.op -eq 'update' -and (Test-Protocol $site @('http', 'https')) -and [string]$site.State -eq 'Started') {
        foreach ($c in @($req.removeCertificates)) { if ($c) { Remove-SslCert $c $sm $req.name } }
        foreach ($c in @($req.addCertificates)) { if ($c) { Add-SslCert $c } }
    }
    @{ changed = $true }
}
