# The persistent host (see pshost.go): the prelude and every script are
# loaded once, then it reads one request a line ({"id","script","request"})
# and writes one reply a line ({"id","ok","result"} or {"id","ok":false,
# "error"}) until stdin closes. A script's functions live in the scope of
# its own call, so two scripts' Invoke-Request never meet.
$SkHandlers = @{}
foreach ($name in @($SkScripts.Keys)) {
    $SkHandlers[$name] = [ScriptBlock]::Create($SkScripts[$name] + "`nInvoke-Request `$args[0]")
}

function Send-Line($doc) {
    [Console]::Out.WriteLine((ConvertTo-Json -InputObject $doc -Depth 10 -Compress))
    [Console]::Out.Flush()
}

Send-Line @{ ready = $true; pid = $PID; psVersion = $PSVersionTable.PSVersion.ToString() }
while ($true) {
    $line = [Console]::In.ReadLine()
    if ($null -eq $line) { break }
    if (-not $line.Trim()) { continue }
    $id = 0
    try {
        $msg = ConvertFrom-Json -InputObject $line
        $id = $msg.id
        $handler = $SkHandlers[[string]$msg.script]
        if (-not $handler) { Fail 'UnknownScript' "the host has no script `"$($msg.script)`"" }
        $result = & $handler $msg.request
        Send-Line @{ id = $id; ok = $true; result = $result }
    } catch {
        Send-Line @{ id = $id; ok = $false; error = (Get-SkError $_) }
    }
}
