# SIOS DataKeeper mirrors, read through the module DataKeeper installs:
# this node's role comes from the MirrorRole field and every target's
# state from TargetList, never from text that merely mentions SOURCE.
function Import-DataKeeper {
    if (Get-Command Get-DataKeeperVolumeInfo -ErrorAction SilentlyContinue) { return }
    $base = if ($env:ExtMirrBase) { $env:ExtMirrBase } else { Join-Path ${env:ProgramFiles(x86)} 'SIOS\DataKeeper' }
    $psd = Join-Path $base 'DataKeeper.psd1'
    try { Import-Module $psd -ErrorAction Stop } catch {
        Fail 'ModuleMissing' "DataKeeper's module is not installed ($psd): install or repair SIOS DataKeeper"
    }
}

function Invoke-Request($req) {
    switch ($req.op) {
        'info' {
            Import-DataKeeper
            $i = Get-DataKeeperVolumeInfo $env:COMPUTERNAME ([string]$req.volume)
            return @{ role = [string]$i.MirrorRole
                      targets = @(@($i.TargetList) | Where-Object { $_ } | ForEach-Object { @{ system = [string]$_.TargetSystem; state = [string]$_.MirrorState } }) }
        }
        default { Fail 'BadRequest' "unknown op `"$($req.op)`"" }
    }
}
