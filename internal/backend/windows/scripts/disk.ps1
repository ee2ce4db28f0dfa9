# Shared disks, found by UniqueId or serial number, never by disk number
# (numbers differ between nodes and boots). Online also checks what a site
# needs before it starts: the volume is healthy and mounted where the
# VolumeResource says.
function Find-Disk($d) {
    if ($d.uniqueId) { Get-Disk -UniqueId $d.uniqueId -ErrorAction SilentlyContinue | Select-Object -First 1 }
    else { Get-Disk -ErrorAction SilentlyContinue | Where-Object { $_.SerialNumber -and $_.SerialNumber.Trim() -eq $d.serial } | Select-Object -First 1 }
}

function Get-DiskInfo($d) {
    $disk = Find-Disk $d
    if (-not $disk) { return @{ uniqueId = [string]$d.uniqueId; serial = [string]$d.serial; found = $false } }
    $vols = @()
    if (-not $disk.IsOffline) {
        foreach ($p in @(Get-Partition -DiskNumber $disk.Number -ErrorAction SilentlyContinue)) {
            $v = $p | Get-Volume -ErrorAction SilentlyContinue
            $vols += @{ driveLetter = [string]$p.DriveLetter; accessPaths = @($p.AccessPaths | ForEach-Object { [string]$_ })
                        fileSystem = [string]$v.FileSystemType; health = [string]$v.HealthStatus; operational = [string]$v.OperationalStatus }
        }
    }
    @{ uniqueId = [string]$d.uniqueId; serial = [string]$d.serial; found = $true; number = [int]$disk.Number
       isOffline = [bool]$disk.IsOffline; offlineReason = [string]$disk.OfflineReason; isReadOnly = [bool]$disk.IsReadOnly; volumes = $vols }
}

# Get-Unusable says why the disk cannot serve root, or returns ''. It is
# the rule of usable in volumes.go, run here too so that a group's
# bring-up, one request, stops before its site starts on a volume that
# cannot serve it.
function Get-Unusable($info, [string]$root) {
    if (-not $info.found) { return 'not found on this node' }
    if ($info.isOffline) { return "offline ($($info.offlineReason))" }
    if ($info.isReadOnly) { return 'read-only' }
    $mounted = @()
    foreach ($v in $info.volumes) {
        $roots = @()
        if ($v.driveLetter -and $v.driveLetter -ne "`0") { $roots += ($v.driveLetter.ToUpperInvariant() + ':\') }
        foreach ($p in $v.accessPaths) { if (-not $p.StartsWith('\\?\')) { $roots += $p } }
        foreach ($r in $roots) {
            $mounted += $r
            if ($r.TrimEnd('\') -ne $root.TrimEnd('\')) { continue }
            if ($v.health -ne 'Healthy') { return "volume at $root is $($v.health) ($($v.operational))" }
            if (@('NTFS', 'REFS') -notcontains ([string]$v.fileSystem).ToUpperInvariant()) { return "volume at $root has file system `"$($v.fileSystem)`" (not mounted, or RAW)" }
            return ''
        }
    }
    "no volume mounted at $root (mounted at $($mounted -join ', ')); give it that drive letter on every node"
}

function Invoke-Request($req) {
    switch ($req.op) {
        'list' { return @{ disks = @(@($req.disks) | Where-Object { $_ } | ForEach-Object { Get-DiskInfo $_ }) } }
        'online' {
            $disk = Find-Disk $req.disk
            if (-not $disk) { Fail 'NotFound' "no disk with $(if ($req.disk.uniqueId) { "UniqueId $($req.disk.uniqueId)" } else { "serial $($req.disk.serial)" }) on $env:COMPUTERNAME" }
            if ($disk.IsOffline) {
                try { Set-Disk -UniqueId $disk.UniqueId -IsOffline $false } catch {
                    # A SCSI-3 reservation of another node surfaces here. [verify]
                    Fail 'VolumeReserved' "disk $($disk.UniqueId) cannot come online: $($_.Exception.Message)"
                }
            }
            if ($disk.IsReadOnly) { Set-Disk -UniqueId $disk.UniqueId -IsReadOnly $false }
            $info = Get-DiskInfo $req.disk
            if ($req.root) {
                $why = Get-Unusable $info $req.root
                if ($why) { Fail 'VolumeUnusable' $why }
            }
            return $info
        }
        'offline' {
            $disk = Find-Disk $req.disk
            if (-not $disk -or $disk.IsOffline) { return @{ changed = $false } }
            Set-Disk -UniqueId $disk.UniqueId -IsOffline $true
            return @{ changed = $true }
        }
        default { Fail 'BadRequest' "unknown op `"$($req.op)`"" }
    }
}
