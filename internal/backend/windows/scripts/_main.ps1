try {
    $raw = [Console]::In.ReadToEnd()
    $req = $null
    if ($raw.Trim()) { $req = ConvertFrom-Json -InputObject $raw }
    $result = Invoke-Request $req
    Send @{ ok = $true; result = $result }
} catch {
    Send @{ ok = $false; error = (Get-SkError $_) }
    exit 1
}
