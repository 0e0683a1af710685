fn main() -> std::io::Result<()> {
    std::fs::write(
        kobatela_openapi::committed_path(),
        kobatela_openapi::document(),
    )
}
