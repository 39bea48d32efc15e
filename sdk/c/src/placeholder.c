int custos_sdk_placeholder(void) { return 0; }
