# Starts or stops one site. Bring-up: every certificate must be in the
# LocalMachine store, then its HTTP.sys binding (ipport, or hostnameport for
# SNI) is created, then the site starts: W3SVC for web bindings, the
# ftpServer element's Start method for FTP. Take-down stops the site, then
# removes the HTTP.sys bindings, so a standby never answers TLS for the VIP.
function Invoke-Request($req) {
    $sm = Get-ServerManager
    $site = Get-Site $sm $req.name
    $web = Test-Protocol $site @('http', 'https')
    $ftp = Test-Protocol $site @('ftp')
    if ($req.op -eq 'start') {
        if ($ftp) {
            $ssl = $site.GetChildElement('ftpServer').GetChildElement('security').GetChildElement('ssl')
            $ftpHash = [string]$ssl['serverCertHash']
            if ($ftpHash) { Assert-Certificate $ftpHash ([string]$ssl['serverCertStoreName']) }
        }
        # The bindings this start creates are removed again if it fails:
        # a node that could not start the site does not answer TLS for it.
        $added = @()
        try {
            foreach ($c in @($req.certificates)) {
                if (-not $c) { continue }
                if (Add-SslCert $c) { $added += $c }
            }
            if ($web) {
                try { [void]$site.Start() } catch {
                    if ($_.Exception.HResult -eq 0x800700B7 -or ($_.Exception.InnerException -and $_.Exception.InnerException.HResult -eq 0x800700B7)) {
                        Fail 'BindingConflict' "another started site holds a binding of `"$($req.name)`""
                    }
                    throw
                }
            }
            if ($ftp) { [void]$site.GetChildElement('ftpServer').Methods['Start'].CreateInstance().Execute() }
        } catch {
            foreach ($c in $added) { try { Remove-SslCert $c $sm $req.name } catch { } }
            throw
        }
    } elseif ($req.op -eq 'stop') {
        if ($web) { [void]$site.Stop() }
        if ($ftp) { [void]$site.GetChildElement('ftpServer').Methods['Stop'].CreateInstance().Execute() }
        foreach ($c in @($req.certificates)) { if ($c) { Remove-SslCert $c $sm $req.name } }
    } else {
        Fail 'BadRequest' "unknown op `"$($req.op)`""
    }
    @{ changed = $true }
}
