# Reports which Windows features Sitekeeper needs are installed. Server SKUs
# have Get-WindowsFeature; client SKUs only the optional-feature names.
function Invoke-Request($req) {
    $out = @()
    if (Get-Command Get-WindowsFeature -ErrorAction SilentlyContinue) {
        foreach ($f in @(Get-WindowsFeature -Name @($req.names))) {
            $out += @{ name = [string]$f.Name; displayName = [string]$f.DisplayName; installed = [bool]$f.Installed }
        }
    } else {
        foreach ($n in @($req.optionalNames)) {
            $f = Get-WindowsOptionalFeature -Online -FeatureName $n -ErrorAction SilentlyContinue
            $out += @{ name = [string]$n; displayName = [string]$n; installed = ($f -and [string]$f.State -eq 'Enabled') }
        }
    }
    @{ features = $out }
}
