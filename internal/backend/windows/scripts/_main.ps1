try {
    $raw = [Console]::In.ReadToEnd()
    $req = $null
    if ($raw.Trim()) { $req = ConvertFrom-Json -InputObject $raw }
    $result = Invoke-Request $req
    Send @{ ok = $true; result = $result }
} catch {
    $e = $_.Exception
    $kind = ''
    $codes = @()
    for ($x = $e; $x; $x = $x.InnerException) {
        if (-not $kind -and $x.Data -and $x.Data['sitekeeper.kind']) { $kind = [string]$x.Data['sitekeeper.kind'] }
        $codes += ('0x{0:X8}' -f $x.HResult)
    }
    Send @{ ok = $false; error = @{ kind = $kind; hresults = $codes; message = $e.Message } }
    exit 1
}
